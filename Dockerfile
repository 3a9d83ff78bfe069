# One image for the operator (`kopf run -m hookline.operator`, set by the Helm chart)
# and the receiver (`hookline receiver ...`, set by the operator's Deployment) — issue 6.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY hookline ./hookline
RUN pip install . && rm -rf /src

# A fixed numeric non-root user: Kubernetes' runAsNonRoot can only verify a numeric UID,
# and the receiver pod's runAsUser/fsGroup (hookline/operator/builders.py) match it.
RUN groupadd --system --gid 10001 hookline \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin hookline \
    && install -d -o 10001 -g 10001 /var/lib/hookline
WORKDIR /var/lib/hookline
USER 10001:10001

# Ingest and admin ports of the receiver; kopf's liveness endpoint of the operator.
EXPOSE 8080 8081
ENTRYPOINT ["hookline"]
CMD ["--help"]

# wimms container image.
#
# Built offline: the machines that build it have a Docker engine but no
# registry, so nothing can be pulled and there is no build stage. The static
# binary is built on the host (`make build`, CGO_ENABLED=0) and copied into an
# empty image. `make image` prepares the build context and runs this file;
# see docs/deployment.md.
#
# Build context (everything else is excluded by .dockerignore):
#   bin/wimms        static binary from `make build`
#   bin/docker-data/ an empty directory `make image` creates: scratch has no
#                    shell to mkdir/chown, so the data directory is copied in
#                    already owned by the runtime user.
FROM scratch

# /__version__ answers from the binary: `make build` stamps version, commit
# and build into it with -ldflags, and this image copies that binary.
# VERSION and COMMIT here only label the image the same way.
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="wimms" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.description="Raft-replicated node-assignment service (tokenserver WIMMS backend)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/wimms-dev/wimms"

COPY bin/wimms /wimms
# A named volume mounted on /data starts as a copy of this directory,
# ownership included, so the non-root member can write to a fresh volume.
COPY --chown=65532:65532 bin/docker-data/ /data/

# Listen on every interface of the container; what other members dial is
# set with WIMMS_*_ADVERTISE (an unspecified address cannot be advertised,
# the server refuses to start without one when it binds 0.0.0.0).
ENV WIMMS_DATA_DIR=/data \
    WIMMS_HTTP_ADDR=0.0.0.0:8080 \
    WIMMS_RAFT_ADDR=0.0.0.0:8081 \
    WIMMS_GOSSIP_ADDR=0.0.0.0:8082

# 8080 HTTP API, 8081 Raft, 8082 memberlist gossip (TCP and UDP).
EXPOSE 8080/tcp 8081/tcp 8082/tcp 8082/udp
VOLUME ["/data"]

# No /etc/passwd in scratch: a numeric, unprivileged uid:gid.
USER 65532:65532

# scratch has no curl: the binary probes itself. Without --addr the
# probe reads WIMMS_HTTP_ADDR like the server does, so it follows a changed
# port; dialling 0.0.0.0 reaches the local listener. Liveness (/healthz),
# not readiness: a member that waits for quorum after a full restart is
# alive, and reporting it unhealthy would stall compose's depends_on.
HEALTHCHECK --interval=5s --timeout=4s --start-period=15s --retries=3 \
    CMD ["/wimms", "health", "--timeout", "3s"]

ENTRYPOINT ["/wimms"]
CMD ["server"]

# The presenced image: one static, stripped binary on an empty base, with the CA certificates
# that HTTPS webhooks and rediss:// need, OCI labels, and a HEALTHCHECK (presenced -healthcheck
# asks its own /healthz).
#
# Where no registry is reachable (this project's machines), `make images` builds the binary and
# copies this machine's CA bundle into bin/, then builds the "prebuilt" target, which needs no
# base image at all:
#   make images            (or: make bin && cp /etc/ssl/certs/ca-certificates.crt bin/ &&
#                           docker build --target prebuilt -t presenced:latest .)
# Elsewhere the default target builds from source in a Go image:
#   docker build --build-arg COMMIT=$(git rev-parse HEAD) -t presenced:latest .
# VERSION (a release's version) replaces the one in the source; COMMIT names the commit.
ARG GO_IMAGE=golang:1.26-bookworm

# ---- target "prebuilt": the binary from bin/presenced (first, so the legacy builder stops here)
FROM scratch AS prebuilt
ARG VERSION=
ARG COMMIT=unknown
ARG CREATED
LABEL org.opencontainers.image.title="presenced" \
      org.opencontainers.image.description="Presence profiles for Asterisk 22" \
      org.opencontainers.image.source="https://github.com/presenced/presenced" \
      org.opencontainers.image.documentation="https://github.com/presenced/presenced/blob/main/README.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${CREATED}"
COPY bin/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY bin/presenced /usr/local/bin/presenced
COPY --chown=65532:65532 deploy/docker/state/ /var/lib/presenced/
USER 65532:65532
WORKDIR /var/lib/presenced
ENV PRESENCED_HTTP_LISTEN=0.0.0.0:8080 \
    PRESENCED_STORE_SNAPSHOT_PATH=/var/lib/presenced/store.json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/presenced", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/presenced"]

# ---- build from source
FROM ${GO_IMAGE} AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.commit=${COMMIT} ${VERSION:+-X main.version=${VERSION}}" -o /out/presenced ./cmd/presenced

# ---- default target: the binary built above
FROM scratch
ARG VERSION=
ARG COMMIT=unknown
ARG CREATED
LABEL org.opencontainers.image.title="presenced" \
      org.opencontainers.image.description="Presence profiles for Asterisk 22" \
      org.opencontainers.image.source="https://github.com/presenced/presenced" \
      org.opencontainers.image.documentation="https://github.com/presenced/presenced/blob/main/README.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/presenced /usr/local/bin/presenced
COPY --chown=65532:65532 deploy/docker/state/ /var/lib/presenced/
USER 65532:65532
WORKDIR /var/lib/presenced
ENV PRESENCED_HTTP_LISTEN=0.0.0.0:8080 \
    PRESENCED_STORE_SNAPSHOT_PATH=/var/lib/presenced/store.json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/presenced", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/presenced"]

# The presenced image: one static binary on an empty base.
#
# Where no registry is reachable (this project's machines), build the binary first and use the
# "prebuilt" target, which needs no base image at all:
#   CGO_ENABLED=0 go build -trimpath -o bin/presenced ./cmd/presenced
#   docker build --target prebuilt -t presenced:latest .
# Elsewhere the default target builds from source in a Go image:
#   docker build -t presenced:latest .
ARG GO_IMAGE=golang:1.26-bookworm

# ---- target "prebuilt": the binary from bin/presenced (first, so the legacy builder stops here)
FROM scratch AS prebuilt
COPY bin/presenced /usr/local/bin/presenced
COPY --chown=65532:65532 deploy/docker/state/ /var/lib/presenced/
USER 65532:65532
WORKDIR /var/lib/presenced
ENV PRESENCED_HTTP_LISTEN=0.0.0.0:8080 \
    PRESENCED_STORE_SNAPSHOT_PATH=/var/lib/presenced/store.json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/presenced"]

# ---- build from source
FROM ${GO_IMAGE} AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION (a semantic version) replaces the source's, for a release; COMMIT names the commit.
ARG VERSION=
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.commit=${COMMIT} ${VERSION:+-X main.version=${VERSION}}" -o /out/presenced ./cmd/presenced

# ---- default target: the binary built above
FROM scratch
COPY --from=builder /out/presenced /usr/local/bin/presenced
COPY --chown=65532:65532 deploy/docker/state/ /var/lib/presenced/
USER 65532:65532
WORKDIR /var/lib/presenced
ENV PRESENCED_HTTP_LISTEN=0.0.0.0:8080 \
    PRESENCED_STORE_SNAPSHOT_PATH=/var/lib/presenced/store.json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/presenced"]

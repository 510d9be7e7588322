# Ward's image: a static binary on distroless, run as a non-root user,
# with /data (database, key file, spool, exports, SIEM buffer) the only
# place it writes, so that the root filesystem can be mounted read-only.
#
#   docker build --build-arg VERSION=$(git describe --always) -t ward .
#   docker run --read-only -v ward-data:/data -p 8443:8443 ward \
#     --tls-cert /data/tls/cert.pem --tls-key /data/tls/key.pem
#
# deploy/Dockerfile.local builds the same image from a binary built
# beforehand, with no registry (.ci/run uses it).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ward ./cmd/ward \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ward /ward
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME ["/data"]
# 8443: FHIR over HTTPS. 9090: metrics, when --metrics-addr 0.0.0.0:9090
# is passed (served over HTTPS with the server's certificate off loopback).
EXPOSE 8443 9090
ENTRYPOINT ["/ward", "serve", "--addr", "0.0.0.0:8443", "--data", "/data"]

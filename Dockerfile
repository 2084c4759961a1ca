# Static binary on an empty base image, non-root. The binary needs no libc,
# shell or CA bundle: it only serves TLS and talks to the apiserver with the
# service account's CA.
#
# For people with Docker: `docker build -t canary-tagger:dev .`. Without a
# container engine, `make image` builds the same image (entrypoint, cmd,
# user 65532, no shell) with hack/image into bin/canary-tagger-image.tar;
# that is the one the tests check (docs/image.md).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY webhook/ webhook/
COPY certs/ certs/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /canary-tagger ./cmd/canary-tagger

FROM scratch
COPY --from=build /canary-tagger /canary-tagger
USER 65532:65532
ENTRYPOINT ["/canary-tagger"]
CMD ["serve"]

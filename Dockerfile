# Static binary on an empty base image, non-root. (Not built in CI: no Docker
# engine there.) The binary needs no libc, shell or CA bundle: it only serves
# TLS and talks to the apiserver with the service account's CA.
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

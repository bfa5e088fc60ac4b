# Crowsnest container image for users: a Rust builder stage, then a small Debian runtime with
# both binaries (`crowsnest`: store/alerter/`up`; `crowsnest-collector`: the lean per-host agent).
#
#   docker build -t crowsnest:latest .
#   docker run -d -p 9300:9300 -v crowsnest-data:/var/lib/crowsnest crowsnest:latest
#
# Needs access to a registry for the rust and debian base images. Without one (air-gapped hosts,
# our CI) build the binary on the host and use deploy/build-offline-image.sh instead, which
# makes an equivalent image with `docker import`.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p crowsnest -p crowsnest-collector \
 && install -m 0755 target/release/crowsnest target/release/crowsnest-collector /usr/local/bin/

FROM debian:${DEBIAN_RELEASE}-slim
# CA certificates for https probes, Slack webhooks and SMTP with TLS; tzdata for log times.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/crowsnest --create-home --uid 10001 crowsnest
COPY --from=build /usr/local/bin/crowsnest /usr/local/bin/crowsnest-collector /usr/local/bin/
COPY crowsnest.example.yml /etc/crowsnest/crowsnest.yml
# The collector reads /var/run/docker.sock, which is usually root:docker; run it with
# `--user root` or `--group-add <docker gid>`. The store and alerter need no privileges.
USER crowsnest
WORKDIR /var/lib/crowsnest
VOLUME ["/var/lib/crowsnest"]
ENV CROWSNEST_LISTEN=0.0.0.0:9300 \
    CROWSNEST_DATA_DIR=/var/lib/crowsnest \
    CROWSNEST_CONFIG=/etc/crowsnest/crowsnest.yml
EXPOSE 9300
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["crowsnest", "healthcheck", "http://127.0.0.1:9300/ready"]
ENTRYPOINT ["crowsnest"]
CMD ["up"]

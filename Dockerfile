# Build: the release binary. aws-lc-sys needs a C toolchain and cmake.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake clang perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked \
 && strip target/release/tokensmith

# Run: a slim image, a non-root user, the SQLite file on a volume.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin tokensmith \
 && mkdir -p /data && chown tokensmith /data
COPY --from=build /src/target/release/tokensmith /usr/local/bin/tokensmith
WORKDIR /data
VOLUME /data
ENV LISTEN_ADDR=0.0.0.0:8000 \
    DATABASE_URL=sqlite:///data/tokensmith.db?mode=rwc
EXPOSE 8000
USER tokensmith
# No HEALTHCHECK: the image has no HTTP client; point the orchestrator at /healthz and /readyz.
ENTRYPOINT ["/usr/local/bin/tokensmith"]
CMD ["serve"]

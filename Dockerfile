# Build stage: compile the release binary.
FROM rust:1-slim-bookworm AS build
# jemalloc (the binary's allocator) is built from C sources with make.
RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The inspector's page, built into the binary.
COPY ui ./ui
COPY bench ./bench
RUN cargo build --release --locked --bin credit-emulator

# Runtime stage: just the binary on a small base.
FROM debian:bookworm-slim
COPY --from=build /src/target/release/credit-emulator /usr/local/bin/credit-emulator
EXPOSE 12111
USER 65534:65534
ENTRYPOINT ["credit-emulator", "--host", "0.0.0.0", "--port", "12111"]

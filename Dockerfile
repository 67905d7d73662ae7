# Build stage: compile the release binary.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bench ./bench
RUN cargo build --release --locked --bin credit-emulator

# Runtime stage: just the binary on a small base.
FROM debian:bookworm-slim
COPY --from=build /src/target/release/credit-emulator /usr/local/bin/credit-emulator
EXPOSE 12111
USER 65534:65534
ENTRYPOINT ["credit-emulator", "--host", "0.0.0.0", "--port", "12111"]

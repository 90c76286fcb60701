# Build stage: a release binary with the web assets compiled in.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# Runtime stage: the binary alone, as a non-root user writing to /var/data.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/data shoebox \
    && mkdir -p /var/data && chown shoebox:shoebox /var/data
COPY --from=build /src/target/release/shoebox /usr/local/bin/shoebox
USER shoebox
ENV SHOEBOX_DATA_DIR=/var/data PORT=8080
VOLUME /var/data
EXPOSE 8080
ENTRYPOINT ["shoebox"]
CMD ["serve"]

# Build stage: a release binary.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin postern

# Run stage: the binary, its Postfix command names, a non-root user.
FROM debian:bookworm-slim
COPY container/install.sh /usr/local/lib/postern/install.sh
COPY --from=build /src/target/release/postern /usr/sbin/postern
COPY config/postern.toml /etc/postern/postern.toml.example
RUN sh /usr/local/lib/postern/install.sh /
# Every parameter comes from POSTERN_* variables; these suit a container.
ENV POSTERN_SMTPD_LISTEN=0.0.0.0:25 \
    POSTERN_ADMIN_LISTEN=0.0.0.0:8025 \
    POSTERN_MAILLOG_FILE=/dev/stdout
USER postern
VOLUME ["/var/spool/postern"]
EXPOSE 25 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["postern", "healthz"]
STOPSIGNAL SIGTERM
CMD ["postern", "start"]

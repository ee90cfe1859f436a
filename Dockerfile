# Build stage: a release binary.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin postern

# Run stage: the binary, its Postfix command names, a non-root user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10025 --user-group --home-dir /var/spool/postern --shell /usr/sbin/nologin postern \
 && mkdir -p /var/spool/postern /etc/postern \
 && chown postern:postern /var/spool/postern \
 && chmod 700 /var/spool/postern
COPY --from=build /src/target/release/postern /usr/sbin/postern
RUN for name in mailq postqueue postcat postconf; do ln -s /usr/sbin/postern /usr/bin/$name; done
COPY config/postern.toml /etc/postern/postern.toml.example
ENV POSTERN_SMTPD_LISTEN=0.0.0.0:25 \
    POSTERN_MAILLOG_FILE=/dev/stdout
USER postern
VOLUME ["/var/spool/postern"]
EXPOSE 25
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["postern", "status"]
STOPSIGNAL SIGTERM
CMD ["postern", "start"]

# Build stage: a release binary.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin postern

# Run stage: the binary, its Postfix command names, a non-root user that
# may bind port 25, and tini as PID 1 to reap what pipe and
# mailbox_command deliveries leave behind.
FROM debian:bookworm-slim
COPY container/install.sh /usr/local/lib/postern/install.sh
COPY --from=build /src/target/release/postern /usr/sbin/postern
COPY config/postern.toml /etc/postern/postern.toml.example
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libcap2-bin \
 && sh /usr/local/lib/postern/install.sh / \
 && apt-get purge -y libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
# Every parameter comes from POSTERN_* variables; these suit a container.
# The drain on stop (shutdown_grace_period) ends before `docker stop`'s
# default 10 s; give the container more (stop_grace_period, --stop-timeout,
# terminationGracePeriodSeconds) and raise it to match. The admin service
# (metrics, queue API, web interface) stays inside the container until it
# has a login: set POSTERN_ADMIN_API_TOKEN or POSTERN_ADMIN_AUTH_USERS and
# POSTERN_ADMIN_LISTEN=0.0.0.0:8025 to publish it.
ENV POSTERN_SMTPD_LISTEN=0.0.0.0:25 \
    POSTERN_ADMIN_LISTEN=127.0.0.1:8025 \
    POSTERN_MAILLOG_FILE=/dev/stdout \
    POSTERN_SHUTDOWN_GRACE_PERIOD=8s
USER postern
VOLUME ["/var/spool/postern"]
EXPOSE 25 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["postern", "healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["postern", "start"]

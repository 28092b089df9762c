# corsproxy as a container: the sidecar of a docker-compose setup (see examples/compose/).
# Two stages: the wheel is built in the first, the final image gets only the installed package
# (every dependency installs from a binary wheel, so no compiler is ever in the final image).

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY corsproxy ./corsproxy
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin corsproxy
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-compile /wheels/*.whl && rm -rf /wheels
# Inside a container the proxy must listen on every interface to be reachable through the
# published port; allowed_hosts still guards the Host header. Mount your team directory on /config.
ENV CORSPROXY_HOST=0.0.0.0 \
    CORSPROXY_PORT=8080 \
    CORSPROXY_CONFIG=/config \
    CORSPROXY_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
COPY config/ /config/
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["corsproxy", "health"]
# Exec form: corsproxy is PID 1's only process and receives SIGTERM itself (graceful drain).
ENTRYPOINT ["corsproxy"]
CMD ["serve"]

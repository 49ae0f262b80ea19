# llmrelay: one image for every role; the command picks it (`api`, `worker`, `simulator`, `up`).
#
#   docker build -t llmrelay .
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 llmrelay worker
#   docker run --rm -p 8000:8000 -e REDIS_URL=... -e LLMRELAY_API_TOKEN=... llmrelay api --host 0.0.0.0

FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# README.md* : the build must not depend on the README being present.
COPY pyproject.toml README.md* ./
# The one import package, `llmrelay`: its own folder plus the three it links to. bench/ and tests/ stay out.
COPY shared ./shared
COPY producer ./producer
COPY worker ./worker
COPY llmrelay ./llmrelay
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LLMRELAY_LOG_FORMAT=json
COPY --from=build /wheels /wheels
# `pip install .`, from the wheel built above: only the installed package ends up in the image.
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 --user-group llmrelay
USER 10001:10001
WORKDIR /home/llmrelay
EXPOSE 8000
ENTRYPOINT ["llmrelay"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]

# The streamae image: monitor, trainer, simulator and dashboard share it.
FROM python:3.11.7-slim-bookworm

# The CPU build of torch is a fraction of the CUDA one; override for GPU hosts.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 streamae
WORKDIR /app

RUN pip install --index-url "${TORCH_INDEX_URL}" "torch>=2.3"
COPY pyproject.toml README.md ./
COPY streamae ./streamae
COPY dashboards ./dashboards
RUN pip install .

USER streamae
EXPOSE 8501 9108
ENTRYPOINT ["streamae"]
CMD ["--help"]

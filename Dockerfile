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

# The trainer writes the model volume as this user: a new, empty named volume
# takes the owner of the image's folder it is mounted on.
RUN mkdir /models && chown streamae:streamae /models
USER streamae
EXPOSE 8501 9108
ENTRYPOINT ["streamae"]
CMD ["--help"]

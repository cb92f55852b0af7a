# vigil's container image: vigild (the server) and vigil (the CLI) on Debian 12.
#
#   make image                       build stage from source, then the runtime stage
#   podman build --build-arg BASE_IMAGE=... .
#
# Build arguments:
#   BASE_IMAGE     a Debian 12 (bookworm) image; `make image` makes one locally with
#                  debootstrap when no registry can be reached
#   VIGIL_MARCH    the CPU the build targets (CMake's VIGIL_MARCH; x86-64-v3 needs AVX2)
#
# Targets: runtime (the default, last stage) compiles vigild and vigil in the build stage;
# runtime-prebuilt takes them from the build context named "prebuilt" instead (podman/docker
# build --target runtime-prebuilt --build-context prebuilt=DIR), as the image test does with
# the binaries CI has just built and tested.
#   VIGIL_VERSION, VIGIL_REVISION, VIGIL_CREATED, VIGIL_SOURCE: OCI labels
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

# --- build stage: compile vigild and vigil ---------------------------------------------------
FROM ${BASE_IMAGE} AS build
ARG VIGIL_MARCH="-march=x86-64-v3 -mpclmul"
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN bash scripts/install-deps build && rm -rf /var/lib/apt/lists/*
# One COPY: each layer is a full copy under some storage drivers (vfs). .dockerignore keeps
# the context to the sources, rules and this file's inputs.
COPY . .
RUN cmake --preset release -DVIGIL_BUILD_BENCH=OFF "-DVIGIL_MARCH=${VIGIL_MARCH}" >/dev/null \
 && cmake --build --preset release --target vigild vigil \
 && mkdir -p /out \
 && install -m 0755 -s build/release/app/vigild build/release/app/vigil /out/

# --- runtime base: the shared libraries, the user, rules and config -------------------------
FROM ${BASE_IMAGE} AS runtime-base
ARG VIGIL_VERSION=0.1.0
ARG VIGIL_REVISION=unknown
ARG VIGIL_CREATED=unknown
ARG VIGIL_SOURCE=
LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Security event pipeline: Kafka -> Sigma rules on Hyperscan -> RocksDB -> REST API" \
      org.opencontainers.image.version="${VIGIL_VERSION}" \
      org.opencontainers.image.revision="${VIGIL_REVISION}" \
      org.opencontainers.image.created="${VIGIL_CREATED}" \
      org.opencontainers.image.source="${VIGIL_SOURCE}" \
      org.opencontainers.image.base.name="debian:bookworm" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      ca-certificates librdkafka1 librocksdb7.8 libsimdjson14 libhyperscan5 libpcre2-8-0 \
      libyaml-cpp0.7 libspdlog1.10 libfmt9 libxxhash0 libzstd1 liblz4-1 libsnappy1v5 \
      libbz2-1.0 zlib1g libarchive13 libssl3 libsasl2-2 libsasl2-modules libgflags2.2 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 vigil \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/vigil --no-create-home \
      --shell /usr/sbin/nologin vigil \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/vigil

COPY rules /usr/share/vigil/rules
COPY deploy/vigild.yml /etc/vigil/vigild.yml

# The only writable places: the data volume and /tmp (an emptyDir or tmpfs under a read-only
# root filesystem).
VOLUME ["/var/lib/vigil"]
USER 10001:10001
WORKDIR /var/lib/vigil
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/vigild"]
CMD ["--config", "/etc/vigil/vigild.yml"]

# --- the image: runtime-base with binaries CI built (runtime-prebuilt) or compiled here ------
FROM runtime-base AS runtime-prebuilt
COPY --from=prebuilt vigild vigil /usr/local/bin/

FROM runtime-base AS runtime
COPY --from=build /out/vigild /out/vigil /usr/local/bin/

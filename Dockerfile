# The image manifests/deployment.yaml runs: `docker build -t REGISTRY/capstan:TAG .`
FROM swift:6.3-bookworm AS build
RUN apt-get update \
  && apt-get install -y --no-install-recommends libcurl4-openssl-dev libhiredis-dev pkg-config \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --static-swift-stdlib --product capstan \
  && cp "$(swift build -c release --show-bin-path)/capstan" /capstan

FROM debian:bookworm-slim
# libcurl and hiredis are linked dynamically; NVML is opened at run time only where a GPU is.
RUN apt-get update \
  && apt-get install -y --no-install-recommends libcurl4 libhiredis0.14 ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /capstan /usr/local/bin/capstan
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/capstan"]

# The image manifests/base/deployment.yaml runs: `docker build -t REGISTRY/capstan:TAG .`
# Its steps are in scripts/image, which the tests run in a fresh clone.
FROM swift:6.3-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/image build /out

FROM debian:bookworm-slim
# libcurl and hiredis are linked dynamically; NVML is opened at run time only where a GPU is.
COPY scripts/image /usr/local/lib/capstan/image
RUN /usr/local/lib/capstan/image runtime
COPY --from=build /out/capstan /usr/local/bin/capstan
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/capstan"]

# syntax=docker/dockerfile:1
# tooljet-operator image for Docker users: the same FROM-scratch image deploy/image/build.sh
# builds with buildah (no daemon needed). The build stage compiles the binary on Debian bookworm
# and stages it with deploy/image/rootfs.sh (the binary, exactly the shared libraries ldd lists,
# the CA bundle, uid 65532 "nonroot"); the final stage is deploy/image/Containerfile's
# (tests/shipping/image.rs checks both stay the same).
#   docker build -t tooljet-operator:dev .

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tooljet-operator \
    && deploy/image/rootfs.sh target/release/tooljet-operator /out/rootfs /out/home

FROM scratch
COPY --from=build /out/rootfs/ /
COPY --from=build --chown=65532:65532 /out/home/ /
ENV HOME=/home/nonroot SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/tooljet-operator"]
CMD ["run"]

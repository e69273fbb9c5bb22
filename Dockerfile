# syntax=docker/dockerfile:1
# tooljet-operator image: built with cargo on Debian bookworm, run on distroless (no shell, no
# package manager) as uid 65532. Not built in this repository's CI (no container engine there).
#   docker build -t tooljet-operator:dev .
#
# The binary is dynamically linked against glibc, OpenSSL 3 and zlib (git2's https/ssh
# transports). gcr.io/distroless/cc-debian12 has glibc, libgcc, libssl3 and CA certificates
# but no zlib, so the builder's libz (same Debian release) is copied beside them.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tooljet-operator \
    && install -D -m 0755 target/release/tooljet-operator /out/rootfs/usr/local/bin/tooljet-operator \
    && libdir="/usr/lib/$(gcc -dumpmachine)" \
    && install -D -m 0644 "$(readlink -f "$libdir/libz.so.1")" "/out/rootfs$libdir/libz.so.1"

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/rootfs/ /
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tooljet-operator"]
CMD ["run"]

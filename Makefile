# SphereCorr — the two commands a newcomer needs: `make serve` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift

.PHONY: deps build release test bench bench-eval bench-service bench-transfer bench-http bench-train fuzz clean image test-container reproduce-paper

deps:
	@scripts/install-deps

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Installs what is missing, builds the release server and runs it: `make serve SERVE_ARGS="--backbone DIR --bundles DIR"`.
## Without SERVE_ARGS it serves the built-in demo model (random weights) on :8080. See README "Serving".
.PHONY: serve
serve: release
	.build/release/spherecorr-server $(SERVE_ARGS)

## Reproduces the paper's SPair-71k tables (README "Reproducing the paper"): fetches facebook/dinov2-base and SPair-71k
## when missing, builds the view cache, trains, evaluates (alpha 0, 0.2, 1; PCK and KAP at 840) and writes
## reproduction.md beside the paper's numbers (docs/paper-numbers.json). ABLATIONS=1 adds Table 4 (no Lvp, Lrd, Lo);
## REPRODUCE_ARGS passes flags (--budget night, --work DIR, --skip STEP, ...: scripts/reproduce-paper --help).
## With SPHERECORR_TRAIN set (a built spherecorr-train) no release build is made.
reproduce-paper: $(if $(SPHERECORR_TRAIN),deps,release)
	scripts/reproduce-paper $(if $(filter 1,$(ABLATIONS)),--ablations) $(REPRODUCE_ARGS)

## Installs what is missing, builds and runs every test (unit, parity against committed reference fixtures, integration).
test: deps
	scripts/test

## DINOv2 forward benchmark: ViT-S/14 and ViT-B/14 at 224², 448², 840², batch 1 and 2, beside PyTorch when installed.
bench: release
	scripts/bench

## Evaluation throughput: pairs/s with a cold and a warm feature cache, and the paper's Table 5 descriptor time.
bench-eval: release
	scripts/bench-eval $(BENCH_EVAL_ARGS)

## /v1/match service benchmark: latency against one batched backbone pass and a PyTorch client, throughput at concurrency
## 1/4/16, resident memory after 100 vs 1,000 requests (random ViT-S/B weights, loopback; ~40 min on 2 cores).
bench-service: release
	scripts/bench-service $(BENCH_SERVICE_ARGS)

## /v1/transfer (1 source + 8 targets) against 8 separate /v1/match calls, cold and warm feature cache, with the ratio
## (random ViT-S weights, 448², loopback; ~2 minutes on 2 cores).
bench-transfer: release
	scripts/bench-transfer $(BENCH_TRANSFER_ARGS)

## Training-step benchmark: one optimiser step (losses, backward, Adam) at batch 8 and 64, foreground 0.5, beside the
## same step of the paper's code in PyTorch fp32, alternating rounds; prints the step-time and peak-memory ratios.
bench-train: release
	scripts/bench-train $(BENCH_TRAIN_ARGS)

## HTTP/1.1 server benchmark: our /livez beside Hummingbird 2 and nginx (wrk on loopback, BENCH_DURATION default 10s).
bench-http: deps
	scripts/bench-http $${BENCH_DURATION:-10s}

## Runs the HTTP/1.1 parser fuzzer (libFuzzer) for FUZZ_SECONDS (default 60).
fuzz: deps
	scripts/fuzz-http1 $${FUZZ_SECONDS:-60}

## The image (Dockerfile), with docker or podman, whichever answers; IMAGE=spherecorr:0.1.0. Where no registry is
## reachable, scripts/image builds the two base images locally first (../shared/tools/container/make-local-bases.sh).
IMAGE ?= spherecorr:0.1.0
image:
	scripts/image $(IMAGE)

## Builds the image, runs it and checks it from outside: readiness, a match, metrics, uid 10001 on a read-only root,
## bundle hot reload, SIGTERM drain and exit 0; prints the image size and start-to-ready time.
test-container: deps
	scripts/test-container --tag $(IMAGE)

clean:
	rm -rf .build .build-*

# The waitlist's everyday commands. `make run` and `make test` work on a fresh Debian machine
# with only the Swift toolchain: they install the rest when it is missing.

SWIFT ?= swift

.PHONY: run test build release lint format bench clean

## Build and serve http://127.0.0.1:8080 (mail goes to mail/*.eml unless WAITLIST_SMTP_URL is set).
run:
	@scripts/install-deps
	$(SWIFT) build --product waitlist
	$(SWIFT) run waitlist serve

## Run every test: unit, routes, CLI, live SMTP against aiosmtpd, then the flood and fuzz suites
## (Tests/live, pytest + hypothesis) against the running server.
test:
	@scripts/install-deps --test
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	python3 -m pytest -q Tests/live

build:
	@scripts/install-deps
	$(SWIFT) build

## An optimised binary in .build/release/waitlist (with its waitlist_Waitlist.resources beside it).
release:
	@scripts/install-deps
	$(SWIFT) build -c release --product waitlist

lint:
	$(SWIFT) format lint --recursive --strict Package.swift Sources Tests

format:
	$(SWIFT) format format --in-place --recursive Package.swift Sources Tests

clean:
	rm -rf .build

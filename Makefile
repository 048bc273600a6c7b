# The waitlist's everyday commands. `make run` and `make test` work on a fresh Debian machine
# with only the Swift toolchain: they install the rest when it is missing.

SWIFT ?= swift

.PHONY: run test test-model test-threads build release install install-built lint format bench clean

## Build and serve http://127.0.0.1:8080 (mail goes to mail/*.eml unless WAITLIST_SMTP_URL is set).
run:
	@scripts/install-deps
	$(SWIFT) build --product waitlist
	$(SWIFT) run waitlist serve

## Run every test: the ownership protocol's model (spin), unit, routes, CLI, live SMTP against
## aiosmtpd, then the flood and fuzz suites (Tests/live, pytest + hypothesis) against the running server.
test:
	@scripts/install-deps --test
	scripts/check-imports
	scripts/check-model
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	python3 -m pytest -q Tests/live

## The outbox's ownership protocol (Tests/model/ownership.pml) checked by spin, every state of
## three configurations, and spin finding the duplicate once the ownership check is taken out.
test-model:
	@scripts/install-deps --test
	scripts/check-model

## The storage and delivery tests again under Thread Sanitizer, which reports a data race between
## threads (as between the signup writer and the requests it answers) on the run it happens in. A
## build of its own in .build-tsan, so it does not rebuild the normal one; any report fails the run.
THREAD_SUITES = DoorbellTests|StorageTests|SignupDatabaseTests|GroupCommitTests|OutboxTests|SendingRoleTests|OpeningQueueTests|DeliveryGovernorTests

test-threads:
	@scripts/install-deps --test
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS="suppressions=$(CURDIR)/Tests/thread-sanitizer.supp" \
		$(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan --filter '$(THREAD_SUITES)'

build:
	@scripts/install-deps
	$(SWIFT) build

## An optimised binary in .build/release/waitlist (with its waitlist_Waitlist.resources beside it).
release:
	@scripts/install-deps
	$(SWIFT) build -c release --product waitlist

## `make install PREFIX=/usr/local`: the release build, installed as PREFIX/lib/waitlist/waitlist with its
## resource bundle (templates, styles, scripts, icons) beside it, and PREFIX/bin/waitlist linking to it.
PREFIX ?= /usr/local
BUILD ?= .build/release

install: release
	@$(MAKE) --no-print-directory install-built BUILD=.build/release

## Installs a binary already built in BUILD (the release build by default) into PREFIX, as `install` does.
install-built:
	test -x $(BUILD)/waitlist && test -d $(BUILD)/waitlist_Waitlist.resources
	install -d $(DESTDIR)$(PREFIX)/lib/waitlist $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/waitlist $(DESTDIR)$(PREFIX)/lib/waitlist/waitlist
	rm -rf $(DESTDIR)$(PREFIX)/lib/waitlist/waitlist_Waitlist.resources
	cp -R $(BUILD)/waitlist_Waitlist.resources $(DESTDIR)$(PREFIX)/lib/waitlist/
	chmod -R u=rwX,go=rX $(DESTDIR)$(PREFIX)/lib/waitlist/waitlist_Waitlist.resources
	ln -sfn ../lib/waitlist/waitlist $(DESTDIR)$(PREFIX)/bin/waitlist

lint:
	$(SWIFT) format lint --recursive --strict Package.swift Sources Tests

format:
	$(SWIFT) format format --in-place --recursive Package.swift Sources Tests

clean:
	rm -rf .build

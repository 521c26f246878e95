# seedpart: build, man pages, install and packages.
#
#   make                                   cargo build --release --locked
#   make man                               man pages into $(TARGET_DIR)/man (.8 and .8.gz)
#   make install DESTDIR=... PREFIX=/usr   the files a package ships (see packaging/)
#   make deb | make rpm                    packages into $(TARGET_DIR)/packages/
#   make check-packages                    builds both and checks them (tests/packaging.rs)
#   make clean                             cargo clean
#
# Nothing here downloads anything but the crates cargo fetches for Cargo.lock.

CARGO ?= cargo
# Where cargo puts its output, so `make install` finds the binary cargo just built.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BIN := $(TARGET_DIR)/release/seedpart
MANOUT := $(TARGET_DIR)/man
PKGOUT := $(TARGET_DIR)/packages

# /usr rather than /usr/local: dracut only looks for modules under /usr/lib/dracut. The units
# and the dracut module name /usr/bin/seedpart; install rewrites that to $(BINDIR).
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
PRESETDIR ?= $(PREFIX)/lib/systemd/system-preset
DRACUTDIR ?= $(PREFIX)/lib/dracut/modules.d
SYSCONFDIR ?= /etc

INSTALL ?= install

.PHONY: all build man install deb rpm check-packages clean
# deb and rpm each remake the man pages, and cargo runs its own jobs: one target at a time.
.NOTPARALLEL:

all: build

build:
	$(CARGO) build --release --locked

# mangen writes every page at once; a fresh directory drops the page of a removed subcommand.
# -n keeps the gzip header free of names and times, so the packages are reproducible.
man: build
	rm -rf '$(MANOUT)'
	$(CARGO) run --release --locked --quiet --example mangen -- '$(MANOUT)' >/dev/null
	for page in '$(MANOUT)'/*.8; do gzip -9n <"$$page" >"$$page.gz"; done

# install-bindir MODE SRC DEST: SRC with /usr/bin/seedpart made $(BINDIR)/seedpart.
install-bindir = sed 's|/usr/bin/seedpart|$(BINDIR)/seedpart|g' '$(2)' >'$(3).tmp' && \
	$(INSTALL) -D -m $(1) '$(3).tmp' '$(3)' && rm -f '$(3).tmp'

install: build man
	$(INSTALL) -D -m 0755 '$(BIN)' '$(DESTDIR)$(BINDIR)/seedpart'
	$(INSTALL) -d -m 0755 '$(DESTDIR)$(UNITDIR)' '$(DESTDIR)$(DRACUTDIR)/90seedpart'
	$(call install-bindir,0644,units/seedpart.service,$(DESTDIR)$(UNITDIR)/seedpart.service)
	$(call install-bindir,0644,units/seedpart-user-data.service,$(DESTDIR)$(UNITDIR)/seedpart-user-data.service)
	$(INSTALL) -D -m 0644 units/90-seedpart.preset '$(DESTDIR)$(PRESETDIR)/90-seedpart.preset'
	$(call install-bindir,0755,dracut/modules.d/90seedpart/module-setup.sh,$(DESTDIR)$(DRACUTDIR)/90seedpart/module-setup.sh)
	$(call install-bindir,0755,dracut/modules.d/90seedpart/seedpart-hook.sh,$(DESTDIR)$(DRACUTDIR)/90seedpart/seedpart-hook.sh)
	$(INSTALL) -D -m 0644 packaging/seedpart.conf '$(DESTDIR)$(SYSCONFDIR)/seedpart/seedpart.conf'
	$(INSTALL) -d -m 0755 '$(DESTDIR)$(MANDIR)/man8'
	$(INSTALL) -m 0644 '$(MANOUT)'/*.8.gz '$(DESTDIR)$(MANDIR)/man8/'

deb:
	packaging/deb/build.sh '$(PKGOUT)'

rpm:
	packaging/rpm/build.sh '$(PKGOUT)'

check-packages:
	$(CARGO) test --locked --test packaging -- --nocapture

clean:
	$(CARGO) clean

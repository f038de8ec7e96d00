# make install / make uninstall: pulsed as a systemd service (docs/systemd.md), or, run
# by a user who is not root, as that user's own service (docs/without-root.md).
#
# Included from the top Makefile. Honours PREFIX (default /usr/local) and DESTDIR
# (a staging root, for packaging or a dry run: nothing outside it is touched, and
# systemctl is not called). What goes where, with PREFIX=/usr/local:
#
#   /usr/local/lib/pulsed/venv/            a venv of its own: requirements/runtime.txt, then pulsed
#   /usr/local/bin/pulsed                  symlink to the venv's console script
#   /usr/local/share/doc/pulsed/           the operator's pages (PULSED_DOCS), credentials.md
#   /usr/local/share/pulsed/admin-panel.php the admin page's function (docs/admin-panel.md)
#   $(UNITDIR)/pulsed.service, pulsed@.service   (ExecStart= rewritten to $(PREFIX))
#   $(USERUNITDIR)/pulsed.service          the user unit, for every user (systemctl --user)
#   $(GENERATORDIR)/pulsed-credentials-generator  loads per-shop credentials into pulsed.service
#   /etc/pulsed/pulsed.toml.example        always refreshed; /etc/pulsed/pulsed.toml is never written
#   /etc/pulsed/credentials/               created 0700 if absent; never filled
#   /etc/pulsed/shops.d/                   created 0755 if absent; never filled
#   /etc/default/pulsed                    only if absent
#
# Not root (and no DESTDIR): everything in the user's home instead, nothing of the
# system's, so a user on a host without root gets a working install from one command:
#
#   ~/.local/lib/pulsed/venv/, ~/.local/bin/pulsed, ~/.local/share/{doc/,}pulsed/
#   ~/.local/share/systemd/user/pulsed.service     the user unit
#   ~/.config/pulsed/pulsed.toml.example, ~/.config/pulsed/credentials/ (0700), shops.d/
#
# uninstall removes what install put there, and the folders it had to create once
# they are empty, and keeps what the operator made: the config, the credentials, an
# edited /etc/default/pulsed and the state.

PYTHON     ?= python3
# A user's own install: not root, and not staging a tree for a package.
PULSED_AS_USER := $(if $(DESTDIR),,$(if $(filter 0,$(shell id -u)),,yes))
# The service's interpreter. The unit hides /root and /home (ProtectHome=yes), so a
# venv built on a pyenv or ~/.local Python would not even start: the system one,
# unless PYTHON names another (RHEL 9's python3 is 3.9: PYTHON=/usr/bin/python3.11).
# A user's own service sees its home, so any interpreter it can run will do.
PULSED_PYTHON ?= $(if $(PYTHON_NAMED),$(PYTHON),$(firstword $(wildcard /usr/bin/python3) $(PYTHON)))
ifneq ($(PULSED_AS_USER),)
PREFIX     ?= $(HOME)/.local
# The XDG folders, as the user's session has them (an empty or relative one is unset).
PULSED_XDG_CONFIG := $(or $(filter /%,$(XDG_CONFIG_HOME)),$(HOME)/.config)
PULSED_XDG_DATA   := $(or $(filter /%,$(XDG_DATA_HOME)),$(HOME)/.local/share)
USERUNITDIR ?= $(PULSED_XDG_DATA)/systemd/user
PULSED_CONFDIR := $(PULSED_XDG_CONFIG)/pulsed
else
PREFIX     ?= /usr/local
# A folder every user manager searches (systemd-analyze --user unit-paths).
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
endif
DESTDIR    ?=
UNITDIR    ?= /etc/systemd/system
# A folder systemd searches for generators whatever PREFIX is.
GENERATORDIR ?= /etc/systemd/system-generators
SYSCONFDIR ?= /etc
PULSED_CONFDIR ?= $(SYSCONFDIR)/pulsed

PULSED_LIBDIR := $(PREFIX)/lib/pulsed
PULSED_VENV   := $(PULSED_LIBDIR)/venv
PULSED_DOCDIR := $(PREFIX)/share/doc/pulsed
PULSED_DATADIR := $(PREFIX)/share/pulsed
# The pages an operator reads on the host, flat as in docs/ so their links hold; the
# developer's pages (testing, mutation results, the soak's record) stay in the tree.
PULSED_DOCS   := systemd.md without-root.md packaging.md status.md status.schema.json \
                 grafana-panel.json admin-panel.md protocol.md contract.md
PULSED_UNITS  := $(if $(PULSED_AS_USER),,pulsed.service pulsed@.service)
# systemctl only for a real install on a host that runs systemd; for a user, only
# when the user's manager runs (cron-only hosts have none).
PULSED_SYSTEMCTL := $(if $(DESTDIR),,$(if $(wildcard /run/systemd/system),systemctl))
PULSED_USER_SYSTEMCTL := $(if $(PULSED_AS_USER),$(if $(PULSED_SYSTEMCTL),$(if $(XDG_RUNTIME_DIR),$(wildcard $(XDG_RUNTIME_DIR)/systemd/private))))

.PHONY: install uninstall

# Folders install may have to create. Those missing before the first install are
# recorded in $(PULSED_CREATED), so uninstall removes exactly those, once empty.
# The user unit's folder with its parent: .../systemd/ is seldom there before.
PULSED_USERUNIT_DIRS := $(patsubst %/,%,$(dir $(USERUNITDIR))) $(USERUNITDIR)
ifneq ($(PULSED_AS_USER),)
PULSED_DIRS    := $(PREFIX)/bin $(PREFIX)/share/doc $(PULSED_USERUNIT_DIRS) \
                  $(PULSED_CONFDIR) $(PULSED_CONFDIR)/credentials $(PULSED_CONFDIR)/shops.d
else
PULSED_DIRS    := $(PREFIX)/bin $(PREFIX)/share/doc $(UNITDIR) $(PULSED_USERUNIT_DIRS) \
                  $(GENERATORDIR) $(SYSCONFDIR)/default $(PULSED_CONFDIR) $(PULSED_CONFDIR)/credentials \
                  $(PULSED_CONFDIR)/shops.d
endif
PULSED_CREATED := $(PULSED_LIBDIR)/created-dirs

install:
	@test -f pyproject.toml || { echo "make install: run it from the source tree" >&2; exit 1; }
# The interpreter first, before anything is created.
	@$(call python_check,$(PULSED_PYTHON),make install)
ifneq ($(PULSED_AS_USER),)
	@echo "make install: not root, so for $$(id -un) alone, under $(PREFIX) and $(PULSED_CONFDIR)" \
	    "(sudo make install for the system service)"
else
	@$(PULSED_PYTHON) -c 'import os, sys; exe = os.path.realpath(sys.executable); \
	    hidden = exe.startswith(("/root/", "/home/", "/run/user/")); \
	    hidden and print(f"make install: {exe} is under a directory the service cannot see" \
	                     " (ProtectHome=yes); set PULSED_PYTHON=/usr/bin/python3", file=sys.stderr); \
	    sys.exit(hidden)'
endif
	@created=$$(cat '$(DESTDIR)$(PULSED_CREATED)' 2>/dev/null; \
	    for d in $(PULSED_DIRS); do test -d "$(DESTDIR)$$d" || echo "$$d"; done); \
	    install -d -m 0755 '$(DESTDIR)$(PULSED_LIBDIR)' && \
	    printf '%s\n' $$created | sed '/^$$/d' | sort -u > '$(DESTDIR)$(PULSED_CREATED).new'
# The package, in a venv of its own.
	install -d -m 0755 '$(DESTDIR)$(PULSED_LIBDIR)' '$(DESTDIR)$(PREFIX)/bin'
	$(PULSED_PYTHON) -m venv --clear '$(DESTDIR)$(PULSED_VENV)'
# Exactly the locked versions, hash-checked; then pulsed itself, built with the
# locked setuptools. Every host installed from one commit runs the same bytes.
	'$(DESTDIR)$(PULSED_VENV)/bin/python' $(PIP_LOCKED) --no-compile -r requirements/runtime.txt
	'$(DESTDIR)$(PULSED_VENV)/bin/python' $(PIP_SELF) --no-compile .
ifneq ($(DESTDIR),)
# Staged: the venv must work from $(PULSED_VENV), not from the staging root.
	grep -rlIF -- '$(DESTDIR)$(PULSED_VENV)' '$(DESTDIR)$(PULSED_VENV)/bin' \
	    '$(DESTDIR)$(PULSED_VENV)/pyvenv.cfg' \
	    | xargs -r sed -i -e 's|$(DESTDIR)$(PULSED_VENV)|$(PULSED_VENV)|g'
endif
	'$(DESTDIR)$(PULSED_VENV)/bin/python' -m compileall -q -f -j 0 \
	    $(if $(DESTDIR),-s '$(DESTDIR)' -p /) '$(DESTDIR)$(PULSED_VENV)/lib'
	ln -sfn '$(PULSED_VENV)/bin/pulsed' '$(DESTDIR)$(PREFIX)/bin/pulsed'
	mv -f '$(DESTDIR)$(PULSED_CREATED).new' '$(DESTDIR)$(PULSED_CREATED)'
ifeq ($(PULSED_AS_USER),)
	install -d -m 0755 '$(DESTDIR)$(GENERATORDIR)'
	install -m 0755 systemd/pulsed-credentials-generator \
	    '$(DESTDIR)$(GENERATORDIR)/pulsed-credentials-generator'
endif
# Documentation.
	install -d -m 0755 '$(DESTDIR)$(PULSED_DOCDIR)' '$(DESTDIR)$(PULSED_DATADIR)'
	install -m 0644 $(addprefix docs/,$(PULSED_DOCS)) '$(DESTDIR)$(PULSED_DOCDIR)/'
	install -m 0644 systemd/credentials.example/README.md '$(DESTDIR)$(PULSED_DOCDIR)/credentials.md'
	install -m 0644 docs/admin-panel.php '$(DESTDIR)$(PULSED_DATADIR)/admin-panel.php'
# Units, pointed at this PREFIX: the system's (as root), and the user unit.
	install -d -m 0755 '$(DESTDIR)$(USERUNITDIR)' $(if $(PULSED_UNITS),'$(DESTDIR)$(UNITDIR)')
	for unit in $(PULSED_UNITS) user/pulsed.service; do \
	    dir='$(DESTDIR)$(UNITDIR)'; case "$$unit" in user/*) dir='$(DESTDIR)$(USERUNITDIR)';; esac; \
	    name=$${unit#user/}; \
	    sed -e 's|/usr/local/|$(PREFIX)/|g' "systemd/$$unit" > "$$dir/$$name.tmp" && \
	    chmod 0644 "$$dir/$$name.tmp" && mv -f "$$dir/$$name.tmp" "$$dir/$$name" || exit 1; \
	done
# Configuration: the example always, the rest only when absent.
	install -d -m 0755 '$(DESTDIR)$(PULSED_CONFDIR)'
	install -m 0644 systemd/pulsed.toml.example '$(DESTDIR)$(PULSED_CONFDIR)/pulsed.toml.example'
	test -d '$(DESTDIR)$(PULSED_CONFDIR)/credentials' || \
	    install -d -m 0700 '$(DESTDIR)$(PULSED_CONFDIR)/credentials'
	test -d '$(DESTDIR)$(PULSED_CONFDIR)/shops.d' || \
	    install -d -m 0755 '$(DESTDIR)$(PULSED_CONFDIR)/shops.d'
ifeq ($(PULSED_AS_USER),)
	install -d -m 0755 '$(DESTDIR)$(SYSCONFDIR)/default'
	test -e '$(DESTDIR)$(SYSCONFDIR)/default/pulsed' || \
	    install -m 0644 systemd/pulsed.default '$(DESTDIR)$(SYSCONFDIR)/default/pulsed'
endif
ifneq ($(PULSED_AS_USER),)
ifneq ($(PULSED_USER_SYSTEMCTL),)
	systemctl --user daemon-reload
endif
	@echo
	@echo "pulsed installed under $(PREFIX) for $$(id -un). Next (docs/without-root.md):"
	@test -e '$(PULSED_CONFDIR)/pulsed.toml' || \
	    echo "  cp $(PULSED_CONFDIR)/pulsed.toml.example $(PULSED_CONFDIR)/pulsed.toml  # then edit it"
	@echo "  put the heartbeat secret in $(PULSED_CONFDIR)/credentials/pulse_heartbeat_secret (0600)"
	@echo "  CREDENTIALS_DIRECTORY=$(PULSED_CONFDIR)/credentials PULSED_CONFIG=$(PULSED_CONFDIR)/pulsed.toml $(PREFIX)/bin/pulsed check"
	@echo "  systemctl --user enable --now pulsed   # with loginctl enable-linger; or cron, see the page"
else
ifneq ($(PULSED_SYSTEMCTL),)
	systemctl daemon-reload
endif
	@echo
	@echo "pulsed installed under $(DESTDIR)$(PREFIX). Next (docs/systemd.md):"
	@test -e '$(DESTDIR)$(SYSCONFDIR)/pulsed/pulsed.toml' || \
	    echo "  cp $(SYSCONFDIR)/pulsed/pulsed.toml.example $(SYSCONFDIR)/pulsed/pulsed.toml  # then edit it"
	@echo "  put the heartbeat secret in $(SYSCONFDIR)/pulsed/credentials/pulse_heartbeat_secret (0600)"
# By hand there is no $CREDENTIALS_DIRECTORY (systemd sets it for the service only):
# point it at the files the unit loads, or the check stops at the missing secret.
	@echo "  sudo CREDENTIALS_DIRECTORY=$(SYSCONFDIR)/pulsed/credentials $(PREFIX)/bin/pulsed check && sudo systemctl enable --now pulsed"
	@echo "  (already running? sudo systemctl restart pulsed)"
endif

uninstall:
ifneq ($(PULSED_AS_USER),)
ifneq ($(PULSED_USER_SYSTEMCTL),)
	-systemctl --user disable --now pulsed.service
endif
else ifneq ($(PULSED_SYSTEMCTL),)
	-systemctl disable --now pulsed.service
	-for link in $(UNITDIR)/*.wants/pulsed@*.service; do \
	    test -L "$$link" && systemctl disable --now "$${link##*/}"; \
	done; true
endif
	for unit in $(PULSED_UNITS); do rm -f '$(DESTDIR)$(UNITDIR)'/"$$unit"; done
	rm -f '$(DESTDIR)$(USERUNITDIR)/pulsed.service'
ifeq ($(PULSED_AS_USER),)
	rm -f '$(DESTDIR)$(GENERATORDIR)/pulsed-credentials-generator'
endif
	if [ -L '$(DESTDIR)$(PREFIX)/bin/pulsed' ]; then rm -f '$(DESTDIR)$(PREFIX)/bin/pulsed'; fi
	rm -f '$(DESTDIR)$(PULSED_CONFDIR)/pulsed.toml.example'
ifeq ($(PULSED_AS_USER),)
# /etc/default/pulsed goes only as install wrote it; an edited one is the operator's.
	if cmp -s systemd/pulsed.default '$(DESTDIR)$(SYSCONFDIR)/default/pulsed'; then \
	    rm -f '$(DESTDIR)$(SYSCONFDIR)/default/pulsed'; fi
endif
	created=$$(cat '$(DESTDIR)$(PULSED_CREATED)' 2>/dev/null); \
	rm -rf '$(DESTDIR)$(PULSED_LIBDIR)' '$(DESTDIR)$(PULSED_DOCDIR)' '$(DESTDIR)$(PULSED_DATADIR)'; \
	for d in $$(printf '%s\n' $$created | sort -r); do rmdir "$(DESTDIR)$$d" 2>/dev/null || true; done
ifneq ($(PULSED_AS_USER),)
ifneq ($(PULSED_USER_SYSTEMCTL),)
	systemctl --user daemon-reload
endif
	@echo "pulsed uninstalled for $$(id -un). Kept: $(PULSED_CONFDIR)/ (config, credentials, shops.d)" \
	    "and the state in ~/.local/state/pulsed."
else
ifneq ($(PULSED_SYSTEMCTL),)
	systemctl daemon-reload
endif
	@echo "pulsed uninstalled. Kept: $(SYSCONFDIR)/pulsed/ (config, credentials, shops.d)," \
	    "an edited $(SYSCONFDIR)/default/pulsed and the state in /var/lib/pulsed" \
	    "and /var/lib/pulsed-instances."
endif

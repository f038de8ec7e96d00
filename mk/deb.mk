# make deb: dist/pulsed_<version>+<release>_<arch>.deb, built with dpkg-deb from a
# staged `make install` (docs/packaging.md says why not dh-virtualenv).
#
# The venv is the locked one (requirements/runtime.txt, hash-checked), on the
# system's /usr/bin/python3, so the package fits the release it is built on: its
# Depends:, copyright paths and version suffix come from that release
# (devtools/debfields.py), and the units go where its systemd keeps its own. Needs
# dpkg's tools and strip (binutils).

# The interpreter the venv is built on and the one that fills in the templates: the
# fields name the Python the package needs because it is the one that built it.
DEB_PYTHON     := /usr/bin/python3
DEB_FIELDS     := $(DEB_PYTHON) devtools/debfields.py
# $(call deb_ask,VARIABLE,COMMAND): debfields.py's answer, asked when first needed and
# kept (VARIABLE becomes simply expanded), so neither other targets nor each use in
# make deb's recipe run it again.
deb_ask = $(eval $(1) := $$(shell $(DEB_FIELDS) $(2)))$($(1))
DEB_UPSTREAM   ?= $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' pulsed/_version.py)
# deb12, deb13: one package per release, and a host upgraded to the next release
# upgrades to its build (0.1.0+deb12 < 0.1.0+deb13).
DEB_RELEASE    ?= $(call deb_ask,DEB_RELEASE,release)
DEB_VERSION    ?= $(DEB_UPSTREAM)+$(DEB_RELEASE)
# /lib on Debian 12, /usr/lib from 13 on (its packages no longer ship into /lib).
DEB_SYSTEMD    ?= $(call deb_ask,DEB_SYSTEMD,systemd-prefix)
DEB_ARCH       ?= $(shell dpkg --print-architecture)
DEB_MAINTAINER ?= AcmeShop Pulse team <pulse@acmeshop.com>
DEB_DIR        := build/deb
DEB_ROOT       := $(DEB_DIR)/root
DEB_VENV       := $(DEB_ROOT)/usr/lib/pulsed/venv
# Deferred: naming the package asks the release, which only make deb needs.
DEB             = dist/pulsed_$(DEB_VERSION)_$(DEB_ARCH).deb
# The second binary package: pulsed's metrics for Debian's prometheus-node-exporter
# (a drop-in naming the file, a tmpfiles.d link into node_exporter's folder). Its own
# package because a tmpfiles.d `L` line makes the link's parent folders: shipped in
# pulsed it would make /var/lib/prometheus/node-exporter on hosts without node_exporter.
DEB_NE_DIR     := build/deb-node-exporter
DEB_NE_ROOT    := $(DEB_NE_DIR)/root
DEB_NE          = dist/pulsed-node-exporter_$(DEB_VERSION)_all.deb
# A native package (no Debian revision), hence changelog.gz.
# Dates inside the package (changelog, file times) from the last commit, so two
# builds of one commit differ only where pip's wheels do.
DEB_EPOCH      ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

.PHONY: deb

deb:
# Each field named, or one line saying which is missing (debfields.py said why).
	@test -n '$(DEB_RELEASE)' && test -n '$(DEB_SYSTEMD)' || \
	    { echo "make deb: cannot tell the release or its systemd's unit folder" >&2; exit 1; }
	rm -rf '$(DEB_DIR)' && mkdir -p '$(DEB_ROOT)/DEBIAN' dist
	$(MAKE) --no-print-directory install DESTDIR='$(CURDIR)/$(DEB_ROOT)' PREFIX=/usr \
	    UNITDIR='$(DEB_SYSTEMD)/systemd/system' \
	    GENERATORDIR='$(DEB_SYSTEMD)/systemd/system-generators' \
	    USERUNITDIR=/usr/lib/systemd/user \
	    PULSED_PYTHON='$(DEB_PYTHON)' >/dev/null
# postinst compiles byte-code on the host and creates the credentials folder 0700:
# neither is dpkg's to own.
	rmdir '$(DEB_ROOT)/etc/pulsed/credentials'
# dpkg knows what it installed; make uninstall's list of created folders is not needed.
	rm -f '$(DEB_ROOT)/usr/lib/pulsed/created-dirs'
# pip and setuptools only built the venv; the service never runs them.
	'$(DEB_VENV)/bin/python' -m pip uninstall --quiet --yes pip setuptools
	find '$(DEB_ROOT)' -depth -type d -name __pycache__ -exec rm -rf {} +
# Nor the venv's activation scripts, nor the command-line tools of dependencies, nor
# the .gitignore that Python 3.13's venv writes for a venv inside a checkout.
	rm -f '$(DEB_VENV)'/bin/activate* '$(DEB_VENV)'/bin/Activate.ps1 '$(DEB_VENV)'/bin/httpx '$(DEB_VENV)'/bin/idna \
	    '$(DEB_VENV)/.gitignore'
# What dh_strip, dh_fixperms and dh_link would do: wheels ship debug symbols and the
# odd executable bit; symlinks within /usr are relative.
	find '$(DEB_VENV)' -type f -name '*.so*' -exec strip --strip-unneeded {} +
	find '$(DEB_VENV)/lib' -type f -perm /111 -name '*.py' -exec chmod a-x {} +
	ln -sfn ../lib/pulsed/venv/bin/pulsed '$(DEB_ROOT)/usr/bin/pulsed'
	ln -sfn ../../../../bin/python3 '$(DEB_VENV)/bin/python3'
	$(DEB_FIELDS) render packaging/deb/copyright.in > '$(DEB_ROOT)/usr/share/doc/pulsed/copyright'
	chmod 0644 '$(DEB_ROOT)/usr/share/doc/pulsed/copyright'
	printf 'pulsed (%s) stable; urgency=medium\n\n  * pulsed %s, built from its source tree.\n\n -- %s  %s\n' \
	    '$(DEB_VERSION)' '$(DEB_VERSION)' '$(DEB_MAINTAINER)' \
	    "$$(date -R -u -d @$(DEB_EPOCH))" \
	    | gzip -9n > '$(DEB_ROOT)/usr/share/doc/pulsed/changelog.gz'
	chmod 0644 '$(DEB_ROOT)/usr/share/doc/pulsed/changelog.gz'
	install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm '$(DEB_ROOT)/DEBIAN/'
	cd '$(DEB_ROOT)' && find etc -type f | sed 's|^|/|' | sort > DEBIAN/conffiles
	$(DEB_FIELDS) render packaging/deb/control.in VERSION='$(DEB_VERSION)' ARCH='$(DEB_ARCH)' \
	    MAINTAINER='$(DEB_MAINTAINER)' SIZE="$$(du -sk --exclude=DEBIAN '$(DEB_ROOT)' | cut -f1)" \
	    > '$(DEB_ROOT)/DEBIAN/control'
	cd '$(DEB_ROOT)' && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
	    | xargs -0 md5sum > DEBIAN/md5sums
	chmod 0644 '$(DEB_ROOT)/DEBIAN/control' '$(DEB_ROOT)/DEBIAN/conffiles' '$(DEB_ROOT)/DEBIAN/md5sums'
	find '$(DEB_ROOT)' -depth -newermt @$(DEB_EPOCH) -exec touch -h -d @$(DEB_EPOCH) {} +
	SOURCE_DATE_EPOCH=$(DEB_EPOCH) dpkg-deb --root-owner-group -Zxz --build '$(DEB_ROOT)' '$(DEB)'
	@ls -l '$(DEB)'
	rm -rf '$(DEB_NE_DIR)'
	install -d -m 0755 '$(DEB_NE_ROOT)/DEBIAN' '$(DEB_NE_ROOT)/usr/lib/tmpfiles.d' \
	    '$(DEB_NE_ROOT)$(DEB_SYSTEMD)/systemd/system/pulsed.service.d' \
	    '$(DEB_NE_ROOT)/usr/share/doc/pulsed-node-exporter'
	install -m 0644 packaging/node-exporter/tmpfiles.conf \
	    '$(DEB_NE_ROOT)/usr/lib/tmpfiles.d/pulsed-node-exporter.conf'
	install -m 0644 packaging/node-exporter/pulsed.service.conf \
	    '$(DEB_NE_ROOT)$(DEB_SYSTEMD)/systemd/system/pulsed.service.d/node-exporter.conf'
	install -m 0644 packaging/node-exporter/copyright '$(DEB_NE_ROOT)/usr/share/doc/pulsed-node-exporter/copyright'
	printf 'pulsed (%s) stable; urgency=medium\n\n  * pulsed %s, built from its source tree.\n\n -- %s  %s\n' \
	    '$(DEB_VERSION)' '$(DEB_VERSION)' '$(DEB_MAINTAINER)' \
	    "$$(date -R -u -d @$(DEB_EPOCH))" \
	    | gzip -9n > '$(DEB_NE_ROOT)/usr/share/doc/pulsed-node-exporter/changelog.gz'
	chmod 0644 '$(DEB_NE_ROOT)/usr/share/doc/pulsed-node-exporter/changelog.gz'
	install -m 0755 packaging/node-exporter/postinst packaging/node-exporter/postrm '$(DEB_NE_ROOT)/DEBIAN/'
	$(DEB_FIELDS) render packaging/node-exporter/control.in VERSION='$(DEB_VERSION)' \
	    MAINTAINER='$(DEB_MAINTAINER)' SIZE="$$(du -sk --exclude=DEBIAN '$(DEB_NE_ROOT)' | cut -f1)" \
	    > '$(DEB_NE_ROOT)/DEBIAN/control'
	cd '$(DEB_NE_ROOT)' && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
	    | xargs -0 md5sum > DEBIAN/md5sums
	chmod 0644 '$(DEB_NE_ROOT)/DEBIAN/control' '$(DEB_NE_ROOT)/DEBIAN/md5sums'
	find '$(DEB_NE_ROOT)' -depth -newermt @$(DEB_EPOCH) -exec touch -h -d @$(DEB_EPOCH) {} +
	SOURCE_DATE_EPOCH=$(DEB_EPOCH) dpkg-deb --root-owner-group -Zxz --build '$(DEB_NE_ROOT)' '$(DEB_NE)'
	@ls -l '$(DEB_NE)'

## lintian: the package passes lintian with no error, and each warning left is one
## docs/packaging.md explains (a new warning fails until it is fixed or explained)
.PHONY: lintian
lintian: deb
	@out=$$(lintian --fail-on error '$(DEB)' '$(DEB_NE)' 2>&1) || { printf '%s\n' "$$out"; exit 1; }; \
	printf '%s\n' "$$out" | grep -v '^running with root'; \
	for tag in $$(printf '%s\n' "$$out" | sed -n 's/^[WE]: pulsed[^:]*: \([^ ]*\).*/\1/p' | sort -u); do \
	    grep -q "^| \`$$tag\`" docs/packaging.md || \
	    { echo "lintian: $$tag is not explained in docs/packaging.md" >&2; exit 1; }; \
	done; echo "lintian: no errors; every warning is explained in docs/packaging.md"

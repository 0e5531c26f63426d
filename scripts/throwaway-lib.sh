# Shared by the throwaway-service scripts (ceph-cluster.sh, keystone.sh);
# sourced, not run. The caller defines log, die and PACKAGES first.

usage() {
	echo "usage: $0 start|stop|status DIR" >&2
	exit 2
}

# install_packages installs the missing ones of PACKAGES (Debian package
# names); only root may, others get the list to install.
install_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	[[ $(id -u) -eq 0 ]] || die "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2
}

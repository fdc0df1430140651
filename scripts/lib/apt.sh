# shellcheck shell=bash
# apt_get ARGS…: apt-get, one at a time. CI runs some steps beside each
# other and each installs what it lacks; a second apt-get fails at once on
# dpkg's lock ("Could not get lock /var/lib/dpkg/lock-frontend"), which is
# what a machine that never ran the tests met. So every apt-get of these
# scripts waits its turn (flock), and waits for any other apt (an unattended
# upgrade) up to five minutes (DPkg::Lock::Timeout).
# Source it; it defines a function and changes nothing by itself.
apt_get() {
  DEBIAN_FRONTEND=noninteractive flock -w 900 /tmp/bookstore-apt.lock \
    apt-get -o DPkg::Lock::Timeout=300 -y -qq "$@"
}

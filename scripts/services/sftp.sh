# An SFTP server: a second sshd (not the system one) with its own config, host key and client
# key, key-only login as root, every session forced into `internal-sftp` starting in files/.
# A second known_hosts holds a different key for the same host, for the refusal tests.
# EXPORTD_TEST_SFTP_CONFIG lets a test start a private sshd of its own with the same keys
# (`-p PORT -o PidFile=none`), to drop or restart it without disturbing other tests.
APT_PACKAGES+=(openssh-server openssh-sftp-server)

start_sftp() {
  local dir="$SERVICE_DIR" port
  port=$(free_port)
  # sshd is compiled to need /run/sshd (its privilege-separation directory).
  mkdir -p "$dir/files" /run/sshd
  rm -f "$dir"/host_key* "$dir"/client_key* "$dir"/other_key*
  ssh-keygen -q -t ed25519 -N '' -C exportd-test-host -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -C exportd-test-client -f "$dir/client_key"
  ssh-keygen -q -t ed25519 -N '' -C exportd-test-wrong -f "$dir/other_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  chmod 644 "$dir/authorized_keys"
  echo "[127.0.0.1]:$port $(cat "$dir/host_key.pub")" > "$dir/known_hosts"
  echo "[127.0.0.1]:$port $(cat "$dir/other_key.pub")" > "$dir/known_hosts_wrong"
  cat > "$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
# The service lives under /tmp, which is world-writable.
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers root
AllowTcpForwarding no
X11Forwarding no
MaxStartups 100
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d $dir/files
CONF
  /usr/sbin/sshd -t -f "$dir/sshd_config"
  # Absolute path: sshd re-executes itself. -D stays in the foreground (its PID is ours to
  # stop), -e logs to stderr (there is no syslog here).
  /usr/sbin/sshd -D -e -f "$dir/sshd_config" -p "$port" > "$dir/sshd.log" 2>&1 &
  local pid=$!
  register_pid "$pid"
  wait_tcp "$port"
  publish EXPORTD_TEST_SFTP_PORT "$port"
  publish EXPORTD_TEST_SFTP_PID "$pid"
  publish EXPORTD_TEST_SFTP_LOG "$dir/sshd.log"
  publish EXPORTD_TEST_SFTP_CLIENT_KEY "$dir/client_key"
  publish EXPORTD_TEST_SFTP_KNOWN_HOSTS "$dir/known_hosts"
  publish EXPORTD_TEST_SFTP_KNOWN_HOSTS_WRONG "$dir/known_hosts_wrong"
  publish EXPORTD_TEST_SFTP_CONFIG "$dir/sshd_config"
  publish EXPORTD_TEST_SFTP_FINGERPRINT "$(ssh-keygen -l -E sha256 -f "$dir/host_key.pub" | awk '{print $2}')"
  publish EXPORTD_TEST_SFTP_WRONG_FINGERPRINT "$(ssh-keygen -l -E sha256 -f "$dir/other_key.pub" | awk '{print $2}')"
  publish EXPORTD_TEST_SFTP_FILES "$dir/files"
}

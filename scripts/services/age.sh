# The age CLI (not a server): the encryption tests decrypt delivered parts with the standard
# `age` tool and make identities with `age-keygen`, so nothing runs and nothing is registered.
APT_PACKAGES+=(age)
start_age() {
  publish EXPORTD_TEST_AGE /usr/bin/age
  publish EXPORTD_TEST_AGE_KEYGEN /usr/bin/age-keygen
}

"""The coordinator's constants that need nothing imported: the protocol's timing and the
CURVE key directory's names (``coordinator.protocol`` carries them to the rest), so the
command line can describe its options without loading the protocol."""

# Timing (seconds). Name the base constants, derive the rest.
HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_LIVENESS = 5
HEARTBEAT_EXPIRY_S = HEARTBEAT_INTERVAL_S * HEARTBEAT_LIVENESS
REQUEST_TIMEOUT_S = 10.0
REQUEST_RETRIES = 3
ROUND_DEADLINE_S = REQUEST_TIMEOUT_S * REQUEST_RETRIES
REGISTRATION_TIMEOUT_S = ROUND_DEADLINE_S  # agent processes start up within one round deadline
REALISATION_TIMEOUT_S = ROUND_DEADLINE_S  # longest silence between meter readings

# The CURVE key directory that ``lemgrid keys`` writes; both sides find keys by these.
CURVE_SERVER_KEY = "coordinator"  # DIR/coordinator.key (public), .key_secret (pair)
CURVE_CLIENTS_DIR, CURVE_PRIVATE_DIR = "clients", "private"  # public keys; key pairs
CURVE_PUBLIC, CURVE_SECRET = ".key", ".key_secret"
CURVE_DEFAULT_CLIENT = "agents"  # one key for a whole agent host

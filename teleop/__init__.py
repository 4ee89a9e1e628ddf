"""teleop: record leader-follower demonstrations to indexed MCAP with provenance."""

__version__ = "0.2.0"

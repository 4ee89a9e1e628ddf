"""The Qt application ``teleop-gui`` (the only package that imports Qt)."""

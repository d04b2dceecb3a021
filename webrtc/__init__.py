"""The WebRTC server, the browser page and the virtual camera: how users meet the live pipeline."""

"""Audio sources: sound card (``device``), files and network streams (``file``); WebRTC in ``webrtc``."""

"""The `live3dpe` command line: the top layer, one module per subcommand over pipeline/, stages/, threedpe/, webrtc/."""

"""HTTP views of the volumes app, one module per resource: `volumes` and `files`."""

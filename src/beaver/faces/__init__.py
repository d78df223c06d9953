"""The face pipeline: scan photos, store faces, cluster people, label and export."""

"""One router per resource: uploads, review (items, evidence, media, the reviewer page), reports, health."""

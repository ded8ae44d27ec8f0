"""The paper's networks as plain torch modules, without Lightning: squash, routing, capsules, losses."""

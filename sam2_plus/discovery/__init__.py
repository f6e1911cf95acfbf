"""Discovery: objects found on keyframes of a tracking job (automatic masks or an open-vocabulary detector), handed
to the video engine as ordinary mask prompts (`settings` what to find, `finder` how, `coverage` which found masks
are new objects, `tracking` the forward pass that adds them)."""

"""The libraries' routine notices stay off the console; everything else they say still shows."""

import logging
import warnings

from capsnet.run.workarounds import notices_nobody_can_act_on


def test_routine_notices_are_dropped_and_other_messages_kept():
    notices_nobody_can_act_on()
    notices_nobody_can_act_on()  # every task calls it: the filters are not stacked
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    loggers = [
        logging.getLogger(name)
        for name in ("lightning.pytorch.utilities.rank_zero", "torch.utils.cpp_extension")
    ]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        loggers[0].warning(
            "\U0001f4a1 Tip: For seamless cloud logging and experiment tracking, try installing ..."
        )
        loggers[0].warning("Trainer already configured with model summary callbacks: [...]. Skipping ...")
        loggers[0].warning("GPU available: False, used: False")
        loggers[1].warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local")
        loggers[1].warning("Emitting ninja build file ...")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert seen == ["GPU available: False, used: False", "Emitting ninja build file ..."]
    assert sum(len(logger.filters) for logger in loggers) == 2

    emitted = [
        ("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(...)`", FutureWarning),
        ("Precision bf16-mixed is not supported by the model summary. Estimated ...", UserWarning),
        ("The dataloader does not have many workers", UserWarning),
        ("`isinstance(treespec, LeafSpec)` is deprecated", UserWarning),  # another category: kept
    ]
    with warnings.catch_warnings(record=True) as caught:
        for message, category in emitted:
            warnings.warn(message, category, stacklevel=1)
    assert [str(w.message) for w in caught] == [message for message, _ in emitted[2:]]

"""`samos data simulate`: clean speech -> random call degradations -> pseudo-MOS labelled 48 kHz corpus.

Modules: ``config`` (SimulateConfig), ``sources`` (clean speech), ``measure`` (level, bandwidth),
``degrade`` (one function per degradation), ``codecs`` (PyAV), ``plan`` (the random chain),
``labels`` (pseudo-MOS), ``corpus`` (orchestration, manifest), ``labelcheck`` (checks vs P.835).
See docs/DATA.md.
"""

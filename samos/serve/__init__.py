"""Scale-out serving: the ONNX model as a Ray Serve deployment shared by many monitor gateways.

``samos.serve.client`` (torch- and Ray-free) is what gateways import; ``samos.serve.deployment``
needs ``pip install 'samos[serve]'``.
"""

"""The safe optimizer: which settings may be shot next, and which of them is worth it.

``optimizer`` orchestrates; ``rules`` states the safety model (one class per rule);
``evidence`` fits the models the rules judge by; ``models`` builds one GP per outcome;
``fitting`` keeps the GPs warm between proposals; ``candidates``, ``strategies`` and
``acquisition`` pick the next point; ``coordinates`` maps settings to model inputs. See
``docs/safety-model.md``.
"""

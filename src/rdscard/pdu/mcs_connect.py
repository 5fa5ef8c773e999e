"""MCS Connect-Initial and Connect-Response (T.125 7 part 2; MS-RDPBCGR 2.2.1.3, 2.2.1.4).

Both are BER-encoded and carry the GCC Conference Create Request or Response
as an opaque ``user_data`` octet string (see :mod:`rdscard.pdu.gcc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final, Self

from rdscard.pdu import ber
from rdscard.pdu.buffer import Reader, Writer


class McsResult(IntEnum):
    """Result (T.125 7 part 1), used by Connect-Response and the domain confirms."""

    RT_SUCCESSFUL = 0
    RT_DOMAIN_MERGING = 1
    RT_DOMAIN_NOT_HIERARCHICAL = 2
    RT_NO_SUCH_CHANNEL = 3
    RT_NO_SUCH_DOMAIN = 4
    RT_NO_SUCH_USER = 5
    RT_NOT_ADMITTED = 6
    RT_OTHER_USER_ID = 7
    RT_PARAMETERS_UNACCEPTABLE = 8
    RT_TOKEN_NOT_AVAILABLE = 9
    RT_TOKEN_NOT_POSSESSED = 10
    RT_TOO_MANY_CHANNELS = 11
    RT_TOO_MANY_TOKENS = 12
    RT_TOO_MANY_USERS = 13
    RT_UNSPECIFIED_FAILURE = 14
    RT_USER_REJECTED = 15


CONNECT_INITIAL_TAG: Final = 101
CONNECT_RESPONSE_TAG: Final = 102
#: Domain selectors are octet strings; RDP clients send one byte.
MAX_DOMAIN_SELECTOR: Final = 64
#: The GCC data of a Connect-Initial is a few kilobytes at most.
MAX_USER_DATA: Final = 0xFFFF

_CI_PDU: Final = "MCS Connect-Initial"
_CR_PDU: Final = "MCS Connect-Response"


@dataclass(frozen=True, slots=True)
class DomainParameters:
    """DomainParameters (T.125 7 part 2; values in MS-RDPBCGR 3.2.5.3.3 and 4.1.4)."""

    max_channel_ids: int
    max_user_ids: int
    max_token_ids: int
    num_priorities: int
    min_throughput: int
    max_height: int
    max_mcspdu_size: int
    protocol_version: int

    def encode(self) -> bytes:
        content = Writer()
        for value in (
            self.max_channel_ids,
            self.max_user_ids,
            self.max_token_ids,
            self.num_priorities,
            self.min_throughput,
            self.max_height,
            self.max_mcspdu_size,
            self.protocol_version,
        ):
            ber.write_integer(content, value)
        out = Writer()
        ber.write_sequence(out, content.getvalue())
        return out.getvalue()

    @classmethod
    def decode_from(cls, reader: Reader, field: str) -> Self:
        seq = ber.read_sequence(reader, field)
        params = cls(
            max_channel_ids=ber.read_integer(seq, f"{field}.maxChannelIds"),
            max_user_ids=ber.read_integer(seq, f"{field}.maxUserIds"),
            max_token_ids=ber.read_integer(seq, f"{field}.maxTokenIds"),
            num_priorities=ber.read_integer(seq, f"{field}.numPriorities"),
            min_throughput=ber.read_integer(seq, f"{field}.minThroughput"),
            max_height=ber.read_integer(seq, f"{field}.maxHeight"),
            max_mcspdu_size=ber.read_integer(seq, f"{field}.maxMCSPDUsize"),
            protocol_version=ber.read_integer(seq, f"{field}.protocolVersion"),
        )
        seq.expect_end()
        return params


#: The parameters a Windows server answers with (MS-RDPBCGR 4.1.4).
SERVER_DOMAIN_PARAMETERS: Final = DomainParameters(
    max_channel_ids=34,
    max_user_ids=3,
    max_token_ids=0,
    num_priorities=1,
    min_throughput=0,
    max_height=1,
    max_mcspdu_size=65528,
    protocol_version=2,
)


@dataclass(frozen=True, slots=True)
class ConnectInitial:
    """MCS Connect-Initial (MS-RDPBCGR 2.2.1.3), the X.224 Data payload.

    ``user_data`` is the GCC Conference Create Request; decode it with
    :func:`rdscard.pdu.gcc.decode_client_data`.
    """

    calling_domain_selector: bytes
    called_domain_selector: bytes
    upward_flag: bool
    target_parameters: DomainParameters
    minimum_parameters: DomainParameters
    maximum_parameters: DomainParameters
    user_data: bytes

    def encode(self) -> bytes:
        content = Writer()
        ber.write_octet_string(content, self.calling_domain_selector)
        ber.write_octet_string(content, self.called_domain_selector)
        ber.write_boolean(content, self.upward_flag)
        content.raw(self.target_parameters.encode())
        content.raw(self.minimum_parameters.encode())
        content.raw(self.maximum_parameters.encode())
        ber.write_octet_string(content, self.user_data)
        out = Writer()
        ber.write_application_tag(out, CONNECT_INITIAL_TAG, content.getvalue())
        return out.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        reader = Reader(data, _CI_PDU)
        length = ber.read_application_tag(reader, CONNECT_INITIAL_TAG, "Connect-Initial")
        body = reader.sub(length, "Connect-Initial")
        reader.expect_end()
        pdu = cls(
            calling_domain_selector=ber.read_octet_string(
                body, "callingDomainSelector", MAX_DOMAIN_SELECTOR
            ),
            called_domain_selector=ber.read_octet_string(
                body, "calledDomainSelector", MAX_DOMAIN_SELECTOR
            ),
            upward_flag=ber.read_boolean(body, "upwardFlag"),
            target_parameters=DomainParameters.decode_from(body, "targetParameters"),
            minimum_parameters=DomainParameters.decode_from(body, "minimumParameters"),
            maximum_parameters=DomainParameters.decode_from(body, "maximumParameters"),
            user_data=ber.read_octet_string(body, "userData", MAX_USER_DATA),
        )
        body.expect_end()
        return pdu


@dataclass(frozen=True, slots=True)
class ConnectResponse:
    """MCS Connect-Response (MS-RDPBCGR 2.2.1.4), the X.224 Data payload.

    ``user_data`` is the GCC Conference Create Response built by
    :func:`rdscard.pdu.gcc.server_data_response`.
    """

    result: int
    called_connect_id: int
    domain_parameters: DomainParameters
    user_data: bytes

    @classmethod
    def for_user_data(
        cls, user_data: bytes, domain_parameters: DomainParameters = SERVER_DOMAIN_PARAMETERS
    ) -> Self:
        """A successful response carrying ``user_data``."""
        return cls(McsResult.RT_SUCCESSFUL, 0, domain_parameters, user_data)

    def encode(self) -> bytes:
        content = Writer()
        ber.write_enumerated(content, self.result)
        ber.write_integer(content, self.called_connect_id)
        content.raw(self.domain_parameters.encode())
        ber.write_octet_string(content, self.user_data)
        out = Writer()
        ber.write_application_tag(out, CONNECT_RESPONSE_TAG, content.getvalue())
        return out.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        reader = Reader(data, _CR_PDU)
        length = ber.read_application_tag(reader, CONNECT_RESPONSE_TAG, "Connect-Response")
        body = reader.sub(length, "Connect-Response")
        reader.expect_end()
        pdu = cls(
            result=McsResult(ber.read_enumerated(body, len(McsResult), "result")),
            called_connect_id=ber.read_integer(body, "calledConnectId"),
            domain_parameters=DomainParameters.decode_from(body, "domainParameters"),
            user_data=ber.read_octet_string(body, "userData", MAX_USER_DATA),
        )
        body.expect_end()
        return pdu

"""The examples of seed 003 (FacturaDirecta clients API reference), verbatim."""

from __future__ import annotations

GET_RESPONSE = """<?xml version="1.0" encoding="UTF-8"?>
<client>
        <id>80</id>
        <legalType><![CDATA[J]]></legalType>
<name><![CDATA[Nombre Cliente]]></name>
        <taxCode><![CDATA[NIF o Código fiscal]]></taxCode>
        <tradeName><![CDATA[Nombre comercial]]></tradeName>
        <noEInvoice>false</noEInvoice>
        <address>
                <line1><![CDATA[primera linea de dirección]]></line1>
                <line2><![CDATA[segunda linea de dirección]]></line2>
                <city><![CDATA[Vic]]></city>
                <province><![CDATA[Barcelona]]></province>
                <zipcode><![CDATA[08500]]></zipcode>
                <country><![CDATA[ES]]></country>
        </address>
        <website>www.facturadirecta.com</website>
        <language>es</language>
        <email>email@facturadirecta.com</email>
        <phone><![CDATA[555020202]]></phone>
        <mobilePhone></mobilePhone>
        <notes><![CDATA[Notas para esta empresa]]></notes>
        <companyCode><![CDATA[Código empresa 1]]></companyCode>
        <billing>
                <currency>EUR</currency>
                <tax1>
                        <name>IVA</name>
                        <rate>18.00</rate>
                </tax1>
                <tax2>
                        <name>IRPF</name>
                        <rate>-15.00</rate>
                </tax2>
                <bank>
                        <country>ES</country>
                        <name><![CDATA[La Caixa]]></name>
                        <accountNumber><![CDATA[ES6121002100300000000000]]></accountNumber>
                        <swift><![CDATA[CAIXESBBXXX]]></swift>
                </bank>
                <paymentMean>02</paymentMean>
                <payableDayInMonth1>7</payableDayInMonth1>
                <payableDayInMonth2>27</payableDayInMonth2>
                <dueDates>
                        <dueDate>
                                <delayInDays>30</delayInDays>
                                <rate>50.00</rate>
                        </dueDate>
                        <dueDate>
                                <delayInDays>60</delayInDays>
                                <rate>50.00</rate>
                        </dueDate>
                </dueDates>
                <customInvoiceNotes>true</customInvoiceNotes>
                <invoiceNotes><![CDATA[Notas de factura personalizadas para este cliente]]></invoiceNotes>
        </billing>
</client>"""

CREATE_BODY = """<?xml version='1.0' encoding='UTF-8'?>
<client>
<legalType><![CDATA[J]]></legalType> <!-- Persona jurídica J -->
<name><![CDATA[Nombre Cliente]]></name>
        <taxCode><![CDATA[NIF o Código fiscal]]></taxCode>
        <tradeName><![CDATA[Nombre comercial]]></tradeName>
        <noEInvoice>false</noEInvoice>
        <address>
                <line1><![CDATA[primera linea de dirección]]></line1>
                <line2><![CDATA[segunda linea de dirección]]></line2>
                <city><![CDATA[Vic]]></city>
                <province><![CDATA[Barcelona]]></province>
                <zipcode><![CDATA[08500]]></zipcode>
                <country><![CDATA[ES]]></country>
        </address>
        <website>www.facturadirecta.com</website>
        <language>es</language>
        <email>email@facturadirecta.com</email>
        <phone><![CDATA[555020202]]></phone>
        <mobilePhone></mobilePhone>
        <notes><![CDATA[Notas para esta empresa]]></notes>
        <companyCode><![CDATA[Código empresa 1]]></companyCode>
<billing>
                <currency>EUR</currency>
                <tax1>
                        <name>IVA</name>
                        <rate>18.00</rate>
                </tax1>
                <tax2>
                        <name>IRPF</name>
                        <rate>-15.00</rate>
                </tax2>
                <bank>
                        <country>ES</country>
                        <name><![CDATA[La Caixa]]></name>
                        <accountNumber><![CDATA[ES6121002100300000000000]]></accountNumber>
                        <swift><![CDATA[CAIXESBBXXX]]></swift>
                </bank>
                <paymentMean>01</paymentMean>
                <dueDates>
                        <dueDate>
                                <delayInDays>30</delayInDays>
                                <rate>30</rate>
                        </dueDate>
                        <dueDate>
                                <delayInDays>90</delayInDays>
                                <rate>70</rate>
                        </dueDate>
                </dueDates>
                <customInvoiceNotes>false</customInvoiceNotes>
                <invoiceNotes><![CDATA[]]></invoiceNotes>
        </billing>
</client>"""

UPDATE_BODY = """<?xml version='1.0' encoding='UTF-8'?>
<client>
        <id>80</id>
        <legalType><![CDATA[F]]></legalType><!-- Person física F -->
<personName><![CDATA[Nombre Cliente]]></personName>
<personSurname><![CDATA[Apellidos Cliente]]></personSurname>
        <taxCode><![CDATA[NIF o Código fiscal]]></taxCode>
        <tradeName><![CDATA[Nombre comercial]]></tradeName>
        <noEInvoice>false</noEInvoice>
        <address>
                <line1><![CDATA[primera linea de dirección]]></line1>
                <line2><![CDATA[segunda linea de dirección]]></line2>
                <city><![CDATA[Vic]]></city>
                <province><![CDATA[Barcelona]]></province>
                <zipcode><![CDATA[08500]]></zipcode>
                <country><![CDATA[ES]]></country>
        </address>
        <website>www.facturadirecta.com</website>
        <language>es</language>
        <email>email@facturadirecta.com</email>
        <phone><![CDATA[555020202]]></phone>
        <mobilePhone></mobilePhone>
        <notes><![CDATA[Notas para esta empresa]]></notes>
        <companyCode><![CDATA[Código empresa 1]]></companyCode>
        <billing>
                <currency>EUR</currency>
                <bank>
                        <country>ES</country>
                        <name><![CDATA[CatalunyaCaixa]]></name>
                        <accountNumber><![CDATA[ES6121002100300000000000]]></accountNumber>
                        <swift><![CDATA[CAIXESBBXXX]]></swift>
                </bank>
                <paymentMean>02</paymentMean>
                <payableDayInMonth1>7</payableDayInMonth1>
                <payableDayInMonth2>27</payableDayInMonth2>
                <dueDates>
                        <dueDate>
                                <delayInDays>30</delayInDays>
                                <rate>50.00</rate>
                        </dueDate>
                        <dueDate>
                                <delayInDays>60</delayInDays>
                                <rate>50.00</rate>
                        </dueDate>
                </dueDates>
        </billing>
</client>"""

CUSTOM_ATTRIBUTES = """<customAttributes>
 <customAttribute>
 <label><![CDATA[Campo 1]]></label>
 <value><![CDATA[Valor 1]]></value>
 </customAttribute>
 <customAttribute>
 <label><![CDATA[Campo 2]]></label>
 <value><![CDATA[Valor 2]]></value>
 </customAttribute>
</customAttributes>"""

UPDATE_CAMPO_1 = """<customAttributes>
 <customAttribute>
 <label><![CDATA[Campo 1]]></label>
 <value><![CDATA[Valor 1b]]></value>
 </customAttribute>
</customAttributes>"""

UPDATE_CAMPO_1_CLEAR_CAMPO_2 = """<customAttributes>
 <customAttribute>
 <label><![CDATA[Campo 1]]></label>
 <value><![CDATA[Valor 1]]></value>
 </customAttribute>
 <customAttribute>
 <label><![CDATA[Campo 2]]></label>
 </customAttribute>
</customAttributes>"""

NOT_FOUND = """<?xml version="1.0" encoding="UTF-8"?>
<xml>
        <httpStatus>404</httpStatus>
</xml>"""

DELETE_OK = """<?xml version="1.0" encoding="UTF-8"?>
<xml>
    <httpStatus>200</httpStatus>
</xml>"""

UNKNOWN_ATTRIBUTE_ERROR = """<?xml version="1.0" encoding="UTF-8"?>
<xml>
 <httpStatus>400</httpStatus>
 <errorCode>INVALID_INPUT_DATA</errorCode>
 <errorMessage><![CDATA[Se ha recibido un atributo personalizado que no existe en el objeto]]></errorMessage>
</xml>"""
